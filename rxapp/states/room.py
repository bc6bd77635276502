"""A tab's view of one project: which project, who may act on it, and what it may ask for.

The rows themselves are not Reflex state. `open_project` checks the viewer owns the
project, then the room bridge puts this tab's socket in the project's room and sends
it a snapshot; after that every change reaches it as row-sized messages merged in the
browser (`components/room_store.py`). So this state is small and per tab: an event in
one tab loads and saves only that tab's few fields and never sends anything to others.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import reflex as rx
from reflex.event import EventSpec

from core.contract import NodeKind, ProviderError
from core.errors import InvalidInput, NotAllowed, NotFound
from core.logs import get_logger, log_step
from core.people.accounts import UserView
from core.people.sharing import SharedProjectView
from core.retries import again_on_deadlock, again_on_deadlock_async
from rxapp.runtime import bridge, core
from rxapp.states.pending import pending_jobs
from rxapp.states.viewer import ViewerState, current_viewer, to_login

log = get_logger("room")


@dataclass(frozen=True)
class Action:
    """A change a tab may ask for: the core call, given the id acted on and the value sent.

    `adds_image` when the value is an image the viewer must have been granted; `on_loop` for
    the pipeline's calls, coroutines that do their own I/O, where the canvas's block a thread.
    `as_user`: the call takes the acting user too (`by`): who can undo it (core/notebook/undo.py), who deletes;
    `answer` turns what the call returned into the tab's answer (a delete's toast with `Undo`).
    """

    call: Callable[..., Any]
    adds_image: bool = False
    on_loop: bool = False
    as_user: bool = False
    answer: Callable[[Any], EventSpec | None] | None = None


def _deleted(undo_step: int) -> EventSpec:
    """A delete's toast: its `Undo` takes back that delete, whatever the user did since."""
    undo = ProjectRoom.undo_edit(undo_step)  # type: ignore[operator]  # mypy reads the event, defined below, as its namespace
    return rx.toast("Node deleted", action={"label": "Undo", "on_click": undo}, duration=8000)


PROJECT_ACTIONS: dict[str, Action] = {
    "add_text_node": Action(lambda project_id, _: core.canvas.add_node(project_id, NodeKind.TEXT_TO_IMAGE)),
    "add_edit_node": Action(lambda project_id, _: core.canvas.add_node(project_id, NodeKind.IMAGE_EDIT)),
    # An empty project's example: a text-to-image node with that prompt (whatever prompt is sent).
    "add_example": Action(
        lambda project_id, prompt: core.canvas.update_node(
            core.canvas.add_node(project_id, NodeKind.TEXT_TO_IMAGE).id, prompt=prompt
        )
    ),
    "rename": Action(lambda project_id, name: core.canvas.rename_project(project_id, name)),
    "run_all_stale": Action(lambda project_id, _: core.plan.run_all_stale(project_id)),
    "autorun": Action(lambda project_id, on: core.plan.set_autorun(project_id, on == "on")),
}
NODE_ACTIONS: dict[str, Action] = {
    "delete": Action(lambda node_id, _, by: core.canvas.delete_node(node_id, by=by), as_user=True, answer=_deleted),
    "prompt": Action(lambda node_id, prompt, by: core.canvas.update_node(node_id, prompt=prompt, by=by), as_user=True),
    "model": Action(lambda node_id, model: core.canvas.update_node(node_id, model=model)),
    "aspect_ratio": Action(lambda node_id, ratio: core.canvas.update_node(node_id, aspect_ratio=ratio)),
    "batch_size": Action(lambda node_id, count: core.canvas.update_node(node_id, batch_size=_count(count))),
    "seed": Action(lambda node_id, seed: core.canvas.update_node(node_id, seed=seed)),
    "add_input": Action(lambda node_id, url: core.canvas.change_inputs(node_id, add=[url]), adds_image=True),
    "remove_input": Action(lambda node_id, url: core.canvas.change_inputs(node_id, remove=[url])),
    "add_input_node": Action(lambda node_id, source: core.notebook.add_input_node(node_id, _node_id(source))),
    "remove_input_node": Action(lambda node_id, source: core.notebook.remove_input_node(node_id, _node_id(source))),
    "move_up": Action(lambda node_id, _, by: core.notebook.move(node_id, -1, by=by), as_user=True),
    "move_down": Action(lambda node_id, _, by: core.notebook.move(node_id, 1, by=by), as_user=True),
    "move_to": Action(
        lambda node_id, target, by: core.notebook.move_to(node_id, _node_id(target), by=by), as_user=True
    ),
    "use_result": Action(lambda node_id, url, by: core.notebook.use_result(node_id, url, by=by), as_user=True),
}
JOB_ACTIONS: dict[str, Action] = {
    "cancel": Action(lambda job_id, _: core.pipeline.cancel(job_id), on_loop=True),
    "retry": Action(lambda job_id, _: core.pipeline.retry_job(job_id), on_loop=True),
}


def _count(raw: str) -> int:
    if not raw.isdigit():
        raise InvalidInput("Images per Generate is a number")
    return int(raw)


def _node_id(raw: str) -> int:
    if not raw.isdigit():
        raise InvalidInput("Pick a node")
    return int(raw)


#: A Generate's request id as the page makes them (`rxapp.states.pending`).
REQUEST_ID = re.compile(r"[a-z0-9]{1,64}")


def received(client_request_id: str) -> EventSpec:
    """Tell the tab its Generate arrived: `room_store.js` sends a Generate again after a
    reconnect until this, or a job row with its request id, says the server has it."""
    return rx.call_script(f"window.__roomStore?.received({json.dumps(client_request_id)})")


async def _generate(node_id: int, client_request_id: str | None, clicked_at: datetime | None) -> bool:
    """Run the node; with stale ancestors, run them first through a plan. True when planned."""
    if await asyncio.to_thread(core.plan.run_with_ancestors, node_id):
        return True
    await core.pipeline.generate(node_id, client_request_id, clicked_at)
    return False


class ProjectRoom(rx.State):
    project_id: int = 0
    #: Every project this viewer may open: their own, then the ones shared with them.
    projects: list[SharedProjectView] = []

    # opening and resyncing ------------------------------------------------
    @rx.event
    async def open_project(self):
        """on_load (and every reconnect): check the viewer owns the project, join its room, get a snapshot."""
        viewer = await current_viewer(self)
        if viewer is None:
            return to_login()
        shown = await self.get_state(ViewerState)
        shown.email, shown.signed_in = viewer.email, not viewer.is_local
        project_id = self._project_in_url()
        if not project_id:
            default = await asyncio.to_thread(core.canvas.ensure_default_project, viewer.id)
            return rx.redirect(f"/p/{default.id}")
        try:
            await asyncio.to_thread(core.access.project, viewer.id, project_id)
        except NotFound:
            # Someone else's project reads exactly like one that does not exist.
            log_step(log, "tab.refused", project_id=project_id, user_id=viewer.id)
            return [rx.toast.error(f"Project {project_id} does not exist"), rx.redirect("/")]
        self.project_id = project_id
        await self._join(viewer)
        self.projects = await asyncio.to_thread(core.sharing.projects_for, viewer.id)
        return pending_jobs.push([])

    def _project_in_url(self) -> int:
        """The project this page shows (`/p/<id>`), 0 on any other page."""
        raw = self.router.url.path.rstrip("/").rsplit("/", 1)[-1]
        return int(raw) if raw.isdigit() else 0

    async def _reopen(self, viewer: UserView) -> bool:
        """Give a state that lost its project the page's one back, as `open_project` would.

        A tab whose worker was killed reconnects to another, which may hand it a new, empty
        state before the page's on_load ran again there (Reflex takes the token, still linked
        to the dead worker, for a duplicate: rxapp/realtime/ghosts.py). A Generate clicked then arrived
        with no project and was refused, and the click was lost (the scaled suite's crash test).
        """
        project_id = self._project_in_url()
        if not project_id:
            return False
        try:
            await asyncio.to_thread(core.access.project, viewer.id, project_id)
        except NotFound:
            return False
        self.project_id = project_id
        log_step(log, "tab.reopened", project_id=project_id, user_id=viewer.id)
        await self._join(viewer)
        return True

    @rx.event
    async def resync(self):
        """The browser saw a hole in the sequence numbers: send this tab a fresh snapshot."""
        viewer = await current_viewer(self)
        if viewer is None:
            return to_login()
        try:
            await asyncio.to_thread(core.access.project, viewer.id, self.project_id)
        except NotFound:
            return rx.redirect("/")
        await self._join(viewer)
        return None

    async def _join(self, viewer: UserView) -> None:
        """Into the project's room as a member: the role is read again on every (re)join."""
        sid = self.router.session.session_id
        snapshot = await bridge.enter(sid, self.project_id, viewer)
        if snapshot is None:
            return  # access ended meanwhile: the tab was told
        log_step(log, "tab.joined", project_id=self.project_id, seq=snapshot.seq, tabs=bridge.tabs(self.project_id))

    # user actions ---------------------------------------------------------
    @rx.event
    async def on_project(self, action: str, value: str = ""):
        return await self._act(PROJECT_ACTIONS.get(action), self.project_id, value)

    @rx.event
    async def on_node(self, action: str, node_id: int, value: str = ""):
        return await self._act(NODE_ACTIONS.get(action), node_id, value, node_id=node_id)

    @rx.event
    async def on_job(self, action: str, job_id: str):
        return await self._act(JOB_ACTIONS.get(action), job_id, "", job_id=job_id)

    @rx.event
    async def generate(self, node_id: int, client_request_id: str, clicked_at_ms: int = 0):
        clicked_at = datetime.fromtimestamp(clicked_at_ms / 1000, UTC) if clicked_at_ms else None
        # The chain's first server-side link: a click that made no job is traced from here.
        log_step(
            log, "generate.received", project_id=self.project_id, node_id=node_id, client_request_id=client_request_id
        )
        planned: list[bool] = []

        async def generate(node: int, _: str) -> None:
            planned.append(await _generate(node, client_request_id or None, clicked_at))

        refused = await self._act(Action(generate, on_loop=True), node_id, "", node_id=node_id)
        answered = [received(client_request_id)] if REQUEST_ID.fullmatch(client_request_id) else []
        # The optimistic row of a refused Generate must not linger, nor that of a node that
        # waits for its ancestors first (its card says so; its job comes when they are done).
        if refused:
            log_step(log, "generate.refused", project_id=self.project_id, client_request_id=client_request_id)
            return [refused, pending_jobs.push([]), *answered]
        return [pending_jobs.push([]), *answered] if any(planned) else answered

    @rx.event
    async def older_jobs(self, before_job_id: str):
        """`Older jobs`: the page of jobs past the oldest this tab holds, to this tab alone."""
        viewer = await current_viewer(self)
        if viewer is None:
            return to_login()
        try:
            await asyncio.to_thread(core.access.project, viewer.id, self.project_id)
            await bridge.send_older_jobs(self.router.session.session_id, self.project_id, before_job_id)
        except NotFound as exc:
            return rx.toast.error(str(exc))
        return None

    @rx.event
    async def set_autorun(self, on: bool):
        return await self._act(PROJECT_ACTIONS["autorun"], self.project_id, "on" if on else "off")

    async def _act(
        self, action: Action | None, subject: Any, value: str, *, node_id: int = 0, job_id: str = ""
    ) -> EventSpec | None:
        """Check the viewer may act here, then run the core call; a refusal becomes a toast.

        The change reaches every tab, this one included, through the room: this event
        returns as soon as the change committed and never waits for the fan-out.
        """
        if action is None:
            return rx.toast.error("Unknown action")  # only a hand-made event names one
        viewer = await current_viewer(self)
        if viewer is None:
            return to_login()
        if not self.project_id and not await self._reopen(viewer):
            return rx.toast.error("This page shows no project you may change: reload it")
        image = value if action.adds_image else ""
        args = (subject, value, viewer.id) if action.as_user else (subject, value)
        try:
            await asyncio.to_thread(
                core.access.may_act, viewer.id, self.project_id, node_id=node_id, job_id=job_id, image_url=image
            )
            # A deadlock's victim rolled back whole: the click runs again instead of being lost.
            if action.on_loop:
                result = await again_on_deadlock_async(action.call, *args)
            else:
                result = await asyncio.to_thread(again_on_deadlock, action.call, *args)
        except NotAllowed as exc:
            log_step(log, "tab.not_allowed", project_id=self.project_id, user_id=viewer.id)
            return rx.toast.error(str(exc))
        except (InvalidInput, NotFound, ProviderError) as exc:
            return rx.toast.error(str(exc))
        return action.answer(result) if action.answer else None

    @rx.event
    async def undo_edit(self, undo_step: int = 0):
        """`Undo` (toolbar, Ctrl/Cmd+Z, a delete's toast): take back this user's last edit, or that step."""
        action = Action(
            lambda project_id, _, by: core.undo.undo(project_id, by, int(undo_step)),
            as_user=True,
            answer=rx.toast.success,
        )
        return await self._act(action, self.project_id, "")

    @rx.event
    async def delete_project(self, typed_name: str):
        """`Delete project` (owners), confirmed by typing its name; then to another project."""
        action = Action(
            lambda project_id, name, by: core.removal.delete(project_id, by, name),
            as_user=True,
            answer=lambda _: rx.redirect("/"),
        )
        return await self._act(action, self.project_id, typed_name)

    # projects ---------------------------------------------------------------
    @rx.event
    async def create_project(self):
        viewer = await current_viewer(self)
        if viewer is None:
            return to_login()
        name = f"Project {len(self.projects) + 1}"
        try:
            project = await asyncio.to_thread(core.canvas.create_project, viewer.id, name)
        except InvalidInput as exc:
            return rx.toast.error(str(exc))
        return rx.redirect(f"/p/{project.id}")

    @rx.event
    async def refresh_projects(self):
        """Projects made or renamed in other projects' tabs reach no room of this one: reread on focus."""
        viewer = await current_viewer(self)
        if viewer is not None:
            self.projects = await asyncio.to_thread(core.sharing.projects_for, viewer.id)

    @rx.event
    def switch_project(self, project_id: str):
        return rx.redirect(f"/p/{project_id}")
