"""The room bridge: each committed change is read, encoded and sent once, to every tab of its project.

A tab joins the socket.io room of its project once the server has checked the viewer
owns it (`ProjectRoom.open_project`, again on every reconnect); socket.io drops it
from the room when its socket disconnects. For each change the bridge reads the rows
that changed after the room's sequence number and emits one `canvas.change` to the
room: socket.io encodes the packet once and queues the same bytes on every socket.
The browser merges the rows by id and version (`components/room_store.js`).

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
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING, Any

from core.changes import Notice
from core.logs import get_logger, log_step
from core.root import Core
from models.views import Changes, ProjectView, Snapshot

if TYPE_CHECKING:
    import reflex as rx
    from reflex.app import EventNamespace

log = get_logger("bridge")

#: Socket.io events the browser's room store listens for (components/room_store.js).
SNAPSHOT_EVENT = "canvas.snapshot"
CHANGE_EVENT = "canvas.change"
ROOM_PREFIX = "project-"


def room_name(project_id: int) -> str:
    return f"{ROOM_PREFIX}{project_id}"


def _project(project: ProjectView) -> dict[str, Any]:
    return {"id": project.id, "name": project.name, "autorun": project.autorun}


def snapshot_message(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "project": _project(snapshot.project),
        "seq": snapshot.seq,
        "jobs": [dataclasses.asdict(job) for job in snapshot.jobs],
        "nodes": [dataclasses.asdict(node) for node in snapshot.nodes],
    }


def change_message(project_id: int, base: int, changes: Changes) -> dict[str, Any]:
    """Only the rows that changed; a node row leaves out its history (the tab extends its own)."""
    message: dict[str, Any] = {"project_id": project_id, "base": base, "seq": changes.seq}
    if changes.jobs:
        message["jobs"] = [dataclasses.asdict(job) for job in changes.jobs]
    if changes.nodes:
        message["nodes"] = [
            {k: v for k, v in dataclasses.asdict(node).items() if k != "history"} for node in changes.nodes
        ]
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


class RoomBridge:
    def __init__(self, core: Core) -> None:
        self._core = core
        self._app: rx.App | None = None
        self._rooms: dict[int, Room] = {}

    def attach(self, app: rx.App) -> None:
        self._app = app

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
            await namespace.emit(SNAPSHOT_EVENT, snapshot_message(snapshot), to=sid)
        return snapshot

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
                await namespace.emit(SNAPSHOT_EVENT, snapshot_message(snapshot), room=name)
                room.seq = snapshot.seq
                return
            if changes.seq <= room.seq:
                return
            base, room.seq = room.seq, changes.seq
            await namespace.emit(CHANGE_EVENT, change_message(project_id, base, changes), room=name)
        self._core.pipeline.record_delivery([job.id for job in changes.jobs], changes.seq, tabs)
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

    async def run(self) -> None:
        """Turn committed change notices into pushes, one per project per burst."""
        with self._core.notifier.subscribe() as queue:
            while True:
                notice: Notice = await queue.get()
                latest = {notice.project_id}
                while not queue.empty():  # coalesce a burst into one push per project
                    latest.add(queue.get_nowait().project_id)
                for project_id in latest:
                    try:
                        await self.push(project_id)
                    except Exception:
                        log.exception("push failed", extra={"project_id": project_id, "step": "room.push_failed"})
                await asyncio.sleep(0)
