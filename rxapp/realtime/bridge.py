"""The room bridge: each committed change is read, encoded and sent once, to every tab of its project.

A tab joins the socket.io room of its project once the server has checked the viewer
owns it (`ProjectRoom.open_project`, again on every reconnect); socket.io drops it
from the room when its socket disconnects. For each change the bridge reads the rows
that changed after the room's sequence number and emits one `canvas.change` to the
room: socket.io encodes the packet once and queues the same bytes on every socket.
The browser merges the rows by id and version (`realtime/room_store.js`).

Why not Reflex's state deltas: a shared state is fanned out with one `modify_state`
per linked tab, each serialising the whole job and node lists under the shared lock,
so the cost grows with tabs x jobs and a tab's own clicks queue behind it. Rooms are
per process: every worker hears every change (LISTEN on PostgreSQL) and emits to the
tabs connected to it, so nothing is relayed per tab through Redis.

The database stays the truth. A room remembers the sequence number it sent last; a
tab that joins gets a snapshot of its own, read under the room's lock so no change is
emitted between the read and the send; a hole in the change events sends a snapshot
to the whole room; and a tab that sees a message based on a sequence number it does
not hold asks for a snapshot again.

Live progress rides them too (`core/jobs/progress.py`): a job's progress row, coalesced to 4 a
second by the board, goes to its project's room as one `canvas.progress` message, whether
it was made here or heard from another worker; a snapshot carries the rows known here.

Sharing and presence ride the same rooms. A tab's socket also joins its account's room
(`user-<id>`), so a membership change (a notice naming the member, from this process or
another worker's NOTIFY) tells that account's tabs to reread their project list, tells
its tabs in the project their new role, or takes them out of the project's room and
tells them their access ended. Presence: this process renews, twice a second, the entries
of the sockets in its rooms (`core.realtime.presence`), drops those that left, and sends a room the
people list when it changed; so its cost grows with projects open here, not with tabs,
and a worker that dies stops renewing its tabs, which then expire. A tab whose socket went
silent (a laptop's lid shut, a network gone without a close) stays in its room until the
socket times out; the server pings every tab each `PING_INTERVAL_S`, and presence leaves
out a tab whose ping went unanswered for half of `PRESENCE_TIMEOUT_S` (it comes back once
it answers), so such a tab leaves the list within that timeout.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from core.changes import Notice
from core.contract import JobStatus
from core.errors import NotFound
from core.jobs.progress import ProgressRow, row_message
from core.logs import get_logger, log_step
from core.people.access import Role
from core.people.accounts import UserView
from core.realtime.presence import TabPresence, people
from core.root import Core
from models.views import Changes, JobView, NodeView, ProjectView, Snapshot

if TYPE_CHECKING:
    import reflex as rx
    from reflex.app import EventNamespace

log = get_logger("bridge")

#: Socket.io events the browser's room store listens for (realtime/room_store.js).
SNAPSHOT_EVENT = "canvas.snapshot"
CHANGE_EVENT = "canvas.change"
#: This tab's role in its project ("" once its access ended).
ACCESS_EVENT = "canvas.access"
MEMBERS_EVENT = "canvas.members"
PRESENCE_EVENT = "canvas.presence"
#: To one tab: a page of jobs older than those it holds (`Older jobs`).
OLDER_JOBS_EVENT = "canvas.older_jobs"
#: To an account's tabs: the projects they may open changed, reread the list.
PROJECTS_EVENT = "canvas.projects"
#: A job's live progress (phase, queue position, percent, preview), merged by job id and version.
PROGRESS_EVENT = "canvas.progress"
ROOM_PREFIX = "project-"
USER_PREFIX = "user-"
#: How often this process renews its tabs' presence and sends rooms what changed.
PRESENCE_ROUND_S = 0.5
#: How often the server pings each tab's socket (Reflex's default, 25 s, would leave a silent
#: tab listed for minutes); an answer costs a few bytes.
PING_INTERVAL_S = 1.0
#: How presence names the built-in user of a deployment without sign-in.
LOCAL_USER_NAME = "local user"


def room_name(project_id: int) -> str:
    return f"{ROOM_PREFIX}{project_id}"


def user_room(user_id: int) -> str:
    return f"{USER_PREFIX}{user_id}"


def _project(project: ProjectView) -> dict[str, Any]:
    return {"id": project.id, "name": project.name, "autorun": project.autorun}


def snapshot_message(snapshot: Snapshot, progress: list[ProgressRow]) -> dict[str, Any]:
    """`progress`: the rows of the project's unfinished jobs this process knows (it holds no others)."""
    return {
        "project": _project(snapshot.project),
        "seq": snapshot.seq,
        "jobs": [dataclasses.asdict(job) for job in snapshot.jobs],
        "nodes": [dataclasses.asdict(node) for node in snapshot.nodes],
        "progress": [row_message(row) for row in progress],
        "more_jobs": snapshot.more_jobs,
    }


def _defaults(view: type) -> dict[str, Any]:
    """A view's fields that have a default, with it."""
    return {
        f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc,operator]
        for f in dataclasses.fields(view)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    }


#: What a change row leaves out, and the tab fills back in (`room_store.js`): a field at its
#: default (most of a row: no error, no retry, ...). A change message stays row-sized (~800 B)
#: as rows gain fields. A node's history is not filled in: without it, the tab extends its own.
ROW_DEFAULTS: dict[str, dict[str, Any]] = {"jobs": _defaults(JobView), "nodes": _defaults(NodeView)}
FILLED_DEFAULTS = {
    "jobs": ROW_DEFAULTS["jobs"],
    "nodes": {k: v for k, v in ROW_DEFAULTS["nodes"].items() if k != "history"},
}


def _changed_row(row: JobView | NodeView, defaults: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(row).items() if k not in defaults or v != defaults[k]}


def change_message(project_id: int, base: int, changes: Changes) -> dict[str, Any]:
    """Only the rows that changed, each without its fields at their default; a node row leaves
    out its history (the tab extends its own), but for one no tab holds (`Canvas.changes`)."""
    message: dict[str, Any] = {"project_id": project_id, "base": base, "seq": changes.seq}
    if changes.jobs:
        message["jobs"] = [_changed_row(job, ROW_DEFAULTS["jobs"]) for job in changes.jobs]
    if changes.nodes:
        message["nodes"] = [_changed_row(node, ROW_DEFAULTS["nodes"]) for node in changes.nodes]
    if changes.deleted_nodes:
        message["deleted_nodes"] = changes.deleted_nodes
    if changes.project is not None:
        message["project"] = _project(changes.project)
    return message


@dataclasses.dataclass
class Room:
    """One project's tabs in this process: the last sequence number sent to them."""

    seq: int = 0
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    #: Sockets of this process whose presence it renews, and the people list last sent.
    present: set[str] = dataclasses.field(default_factory=set)
    people: list[dict[str, Any]] | None = None
    presence_lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)


_NOBODY = TabPresence("", 0, "")


class RoomBridge:
    def __init__(self, core: Core, clock: Callable[[], float] = time.time) -> None:
        self._core = core
        #: Engine.IO stamps its pings with `time.time`: the same clock judges them unanswered.
        self._clock = clock
        self._app: rx.App | None = None
        self._rooms: dict[int, Room] = {}
        #: Each tab (socket) here that opened a project: who, and the node it types in.
        self._tabs: dict[str, TabPresence] = {}

    def attach(self, app: rx.App) -> None:
        """Serve `app`'s sockets: its rooms get the changes, and the progress rows, from here on.

        Not in `__init__`: the core is built on first use (rxapp/runtime.py), not when the
        bridge is made."""
        self._app = app
        self._core.progress.subscribe(self.push_progress)
        sio = getattr(app, "sio", None)
        if sio is not None:
            sio.eio.ping_interval = PING_INTERVAL_S  # read at each connect, for its handshake

    @property
    def _namespace(self) -> EventNamespace:
        namespace = self._app.event_namespace if self._app is not None else None
        if namespace is None:
            raise RuntimeError("the room bridge needs the app's socket namespace (attach the app first)")
        return namespace

    def tabs(self, project_id: int) -> int:
        """Sockets in the project's room in this process."""
        namespace = self._namespace
        return sum(1 for _ in namespace.server.manager.get_participants(namespace.namespace, room_name(project_id)))

    async def join(self, sid: str, project_id: int) -> Snapshot:
        """Put an authorised tab's socket in the project's room and send it a snapshot of its own.

        Leaves the room of any project the socket showed before.
        """
        namespace, name = self._namespace, room_name(project_id)
        for joined in namespace.rooms(sid):
            if joined.startswith(ROOM_PREFIX) and joined != name:
                await namespace.leave_room(sid, joined)
        room = self._rooms.setdefault(project_id, Room())
        async with room.lock:
            alone = self.tabs(project_id) == 0
            await namespace.enter_room(sid, name)
            snapshot = await asyncio.to_thread(self._core.canvas.snapshot, project_id)
            if alone:
                # Nobody was listening, so nothing was sent since the room's last seq.
                room.seq = snapshot.seq
            message = snapshot_message(snapshot, self._core.progress.rows(project_id))
            await namespace.emit(SNAPSHOT_EVENT, message, to=sid)
        return snapshot

    async def send_older_jobs(self, sid: str, project_id: int, before_job_id: str) -> None:
        """One tab asked for the jobs past those it holds: to it alone, merged like a change's rows."""
        page = await asyncio.to_thread(self._core.canvas.older_jobs, project_id, before_job_id)
        message = {"project_id": project_id, "jobs": [dataclasses.asdict(j) for j in page.jobs], "more": page.more}
        await self._namespace.emit(OLDER_JOBS_EVENT, message, to=sid)

    async def push(self, project_id: int) -> None:
        """Send what changed in the project since the room's last message, once, to the whole room."""
        room = self._rooms.get(project_id)
        if room is None:
            return  # no tab here ever opened it
        namespace, name = self._namespace, room_name(project_id)
        async with room.lock:
            tabs = self.tabs(project_id)
            if not tabs:
                return  # the next tab to join starts from a snapshot
            changes = await asyncio.to_thread(self._core.canvas.changes, project_id, room.seq)
            if changes.gap:
                log_step(log, "room.resync", project_id=project_id, seq=room.seq, tabs=tabs)
                snapshot = await asyncio.to_thread(self._core.canvas.snapshot, project_id)
                message = snapshot_message(snapshot, self._core.progress.rows(project_id))
                await namespace.emit(SNAPSHOT_EVENT, message, room=name)
                room.seq = snapshot.seq
                return
            if changes.seq <= room.seq:
                return
            base, room.seq = room.seq, changes.seq
            await namespace.emit(CHANGE_EVENT, change_message(project_id, base, changes), room=name)
        for job in changes.jobs:
            if JobStatus(job.status).is_terminal:
                self._core.progress.forget(job.id)
        for job in changes.jobs:
            log_step(
                log,
                "room.pushed",
                job_id=job.id,
                project_id=project_id,
                seq=changes.seq,
                status=job.status,
                version=job.version,
                tabs=tabs,
            )

    async def push_progress(self, row: ProgressRow) -> None:
        """One job's progress row to its project's tabs here (none: nothing to send)."""
        if row.project_id not in self._rooms or not self.tabs(row.project_id):
            return
        message = {"project_id": row.project_id, "rows": [row_message(row)]}
        await self._namespace.emit(PROGRESS_EVENT, message, room=room_name(row.project_id))

    # sharing -------------------------------------------------------------------
    async def enter(self, sid: str, project_id: int, viewer: UserView) -> Snapshot | None:
        """`join` for a member's tab: also its account's room, its role, the members and who is here.

        None for a non-member. The role is read again once the socket joined, so a removal
        committed meanwhile (whose push missed this socket) still ends this tab's access.
        """
        namespace = self._namespace
        try:
            await asyncio.to_thread(self._core.access.project, viewer.id, project_id)
        except NotFound:
            return None  # no member: not a byte of the project
        await namespace.enter_room(sid, user_room(viewer.id))
        snapshot = await self.join(sid, project_id)
        try:
            role = await asyncio.to_thread(self._core.access.project, viewer.id, project_id)
        except NotFound:
            await namespace.leave_room(sid, room_name(project_id))
            await namespace.emit(ACCESS_EVENT, {"project_id": project_id, "role": ""}, to=sid)
            return None
        await namespace.emit(ACCESS_EVENT, {"project_id": project_id, "role": role.value}, to=sid)
        if role is not Role.OWNER:
            await asyncio.to_thread(self._core.invitations.arrived, project_id, viewer)
        await namespace.emit(MEMBERS_EVENT, await self._members_message(project_id), to=sid)
        email = LOCAL_USER_NAME if viewer.is_local else viewer.email
        self._tabs[sid] = TabPresence(sid, viewer.id, email)
        self._rooms[project_id].present.add(sid)
        await self.presence_round(project_id, tell=sid)
        return snapshot

    async def _members_message(self, project_id: int) -> dict[str, Any]:
        members = await asyncio.to_thread(self._core.sharing.members, project_id)
        return {"project_id": project_id, "members": [dataclasses.asdict(m) for m in members]}

    async def members_changed(self, project_id: int, user_id: int) -> None:
        """One account's membership of the project changed (added, new role, removed), or
        only the member list did (`user_id` 0: an invitation, which names no account)."""
        namespace = self._namespace
        if user_id:
            await namespace.emit(PROJECTS_EVENT, {"project_id": project_id}, room=user_room(user_id))
        room = self._rooms.get(project_id)
        if room is None or not self.tabs(project_id):
            return
        # Never for 0: it is also the user of `_NOBODY`, which stands for every tab not entered yet.
        ended = await self._access_changed(project_id, user_id) if user_id else False
        await namespace.emit(MEMBERS_EVENT, await self._members_message(project_id), room=room_name(project_id))
        if ended:
            await self.presence_round(project_id)

    async def _access_changed(self, project_id: int, user_id: int) -> bool:
        """Tell the account's tabs in the room their role now; True when their access ended."""
        namespace = self._namespace
        try:
            role = await asyncio.to_thread(self._core.access.project, user_id, project_id)
        except NotFound:
            role = None
        theirs = [sid for sid in self._participants(project_id) if self._tabs.get(sid, _NOBODY).user_id == user_id]
        for sid in theirs:
            if role is None:
                # Out of the room first: not one more change of this project reaches the tab.
                await namespace.leave_room(sid, room_name(project_id))
                log_step(log, "tab.access_ended", project_id=project_id, user_id=user_id)
            await namespace.emit(ACCESS_EVENT, {"project_id": project_id, "role": role or ""}, to=sid)
        return role is None and bool(theirs)

    def _participants(self, project_id: int) -> list[str]:
        namespace = self._namespace
        return [sid for sid, _ in namespace.server.manager.get_participants(namespace.namespace, room_name(project_id))]

    # presence ------------------------------------------------------------------
    async def typing(self, sid: str, project_id: int, node_id: int) -> None:
        """The tab's cursor entered a node's prompt (or left it: 0); others see it at once."""
        tab = self._tabs.get(sid)
        room = self._rooms.get(project_id)
        if tab is None or room is None or sid not in room.present or tab.node_id == node_id:
            return
        self._tabs[sid] = dataclasses.replace(tab, node_id=node_id)
        await self.presence_round(project_id)

    async def presence_round(self, project_id: int, tell: str = "") -> None:
        """Renew this process's tabs of the project, drop those that left, send the room a changed list.

        `tell`: a tab that just came, which gets the list even when it did not change.
        """
        room = self._rooms.get(project_id)
        if room is None:
            return
        async with room.presence_lock:
            here = set(self._participants(project_id))
            silent = {sid for sid in room.present & here if self._silent(sid)}
            staying = [self._tabs[sid] for sid in (room.present & here) - silent if sid in self._tabs]
            gone = sorted(room.present - here)
            room.present -= set(gone)
            # A silent tab stays in `present`: renewed again once its socket answers.
            await self._core.presence.renew(project_id, staying, gone + sorted(silent))
            tabs = await self._core.presence.read(project_id)
            current = [dataclasses.asdict(line) for line in people(tabs)]
            message = {"project_id": project_id, "people": current}
            if current != room.people and here:
                await self._namespace.emit(PRESENCE_EVENT, message, room=room_name(project_id))
            elif tell:
                await self._namespace.emit(PRESENCE_EVENT, message, to=tell)
            room.people = current if here else None
        for sid in gone:
            if not any(sid in other.present for other in self._rooms.values()):
                self._tabs.pop(sid, None)

    def _silent(self, sid: str) -> bool:
        """Whether the tab's socket left the server's last ping unanswered for half the presence timeout."""
        namespace = self._namespace
        server = namespace.server
        eio_sid = server.manager.eio_sid_from_sid(sid, namespace.namespace)
        socket = server.eio.sockets.get(eio_sid) if eio_sid else None
        asked: float | None = getattr(socket, "last_ping", None)  # set when a ping goes out, cleared by its answer
        return asked is not None and self._clock() - asked > self._core.presence.timeout_s / 2

    async def run_presence(self) -> None:
        """Every `PRESENCE_ROUND_S`: a presence round for each project some tab here has open."""
        while True:
            for project_id in [p for p, room in self._rooms.items() if room.present]:
                try:
                    await self.presence_round(project_id)
                except Exception:
                    log.exception("presence round failed", extra={"project_id": project_id, "step": "presence.failed"})
            await asyncio.sleep(PRESENCE_ROUND_S)

    async def run(self) -> None:
        """Turn committed change notices into pushes, one per project per burst."""
        with self._core.notifier.subscribe() as queue:
            while True:
                burst: list[Notice] = [await queue.get()]
                while not queue.empty():  # coalesce a burst into one push per project
                    burst.append(queue.get_nowait())
                for project_id, member in {(n.project_id, n.member) for n in burst if n.roster}:
                    try:
                        await self.members_changed(project_id, member)
                    except Exception:
                        log.exception("membership push failed", extra={"project_id": project_id})
                latest = {n.project_id for n in burst}
                for project_id in latest:
                    try:
                        await self.push(project_id)
                    except Exception:
                        log.exception("push failed", extra={"project_id": project_id, "step": "room.push_failed"})
                await asyncio.sleep(0)
