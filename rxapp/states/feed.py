"""One shared state per project: every tab open on a project links to it.

Why `rx.SharedState`: one server-side copy per project, and Reflex fans each change
out to every linked tab as a delta, so the bridge updates one state per change,
not one per tab. The state is only a cache of the database: on every (re)load a
tab catches up from the database, and a change it may have missed is found by
sequence number, never assumed from the stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import reflex as rx
from reflex.event import EventSpec

from core.canvas import QUEUE_LIMIT
from core.contract import NodeKind, ProviderError
from core.errors import InvalidInput, NotFound
from core.logs import get_logger, log_step
from models.views import Changes, JobView, NodeView, ProjectView, Snapshot
from rxapp.runtime import core, project_token
from rxapp.states.pending import pending_jobs
from rxapp.states.viewer import ViewerState, current_viewer, to_login

log = get_logger("feed")

#: Projects some tab has opened in this process: the only ones worth pushing to.
OPEN_PROJECTS: set[int] = set()
T = TypeVar("T")


class ProjectFeed(rx.SharedState):
    project_id: int = 0
    project_name: str = ""
    seq: int = 0
    nodes: list[NodeView] = []
    jobs: list[JobView] = []
    projects: list[ProjectView] = []

    @rx.var
    def confirmed_requests(self) -> list[str]:
        """Client request ids whose real job row arrived (their optimistic rows hide)."""
        return [j.client_request_id for j in self.jobs if j.client_request_id]

    @rx.var
    def job_steps(self) -> dict[str, int]:
        """Timeline length per job, so an open timeline knows when to reload."""
        return {j.id: j.steps for j in self.jobs}

    @rx.var
    def finished_images(self) -> list[str]:
        """Every node's current result, offered as an input to edit nodes."""
        return [n.image_url for n in self.nodes if n.image_url]

    # loading and catching up ---------------------------------------------
    @rx.event
    async def open_project(self):
        """on_load: check the viewer owns the project, link this tab to it, resync from the database."""
        viewer = await current_viewer(self)
        if viewer is None:
            return to_login()
        shown = await self.get_state(ViewerState)
        shown.email, shown.signed_in = viewer.email, not viewer.is_local
        raw = self.router.url.path.rstrip("/").rsplit("/", 1)[-1]
        project_id = int(raw) if raw.isdigit() else 0
        if not project_id:
            default = await asyncio.to_thread(core.canvas.ensure_default_project, viewer.id)
            return rx.redirect(f"/p/{default.id}")
        try:
            await asyncio.to_thread(core.access.project, viewer.id, project_id)
            snapshot = await asyncio.to_thread(core.canvas.snapshot, project_id)
        except NotFound:
            # Someone else's project reads exactly like one that does not exist.
            log_step(log, "tab.refused", project_id=project_id, user_id=viewer.id)
            return [rx.toast.error(f"Project {project_id} does not exist"), rx.redirect("/")]
        linked = await self._link_to(project_token(project_id))
        OPEN_PROJECTS.add(project_id)
        linked.apply_snapshot(snapshot)
        linked.projects = await asyncio.to_thread(core.canvas.list_projects, viewer.id)
        log_step(log, "tab.linked", project_id=project_id, seq=snapshot.seq, tabs=len(linked._linked_from))
        return pending_jobs.push([])

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        if snapshot.seq < self.seq and self.project_id == snapshot.project.id:
            return  # an older read than what we already show
        self.project_id = snapshot.project.id
        self.project_name = snapshot.project.name
        self.seq = snapshot.seq
        self.nodes = snapshot.nodes
        self.jobs = snapshot.jobs

    async def catch_up(self) -> Changes | None:
        """Apply every change after `seq`; returns what changed (None when nothing did)."""
        if not self.project_id:
            return None
        changes = await asyncio.to_thread(core.canvas.changes, self.project_id, self.seq)
        if changes.gap:
            log_step(log, "feed.resync", project_id=self.project_id, seq=self.seq)
            snapshot = await asyncio.to_thread(core.canvas.snapshot, self.project_id)
            self.seq = -1  # accept the snapshot whatever we showed
            self.apply_snapshot(snapshot)
            return None
        if changes.seq <= self.seq:
            return None
        self.seq = changes.seq
        if changes.project is not None:
            self.project_name = changes.project.name
            self.projects = await asyncio.to_thread(core.canvas.list_projects, changes.project.owner_id)
        self.nodes = _merge(self.nodes, changes.nodes, changes.deleted_nodes, key=lambda n: n.id)
        jobs = _merge(self.jobs, changes.jobs, [], key=lambda j: j.id)
        self.jobs = sorted(jobs, key=lambda j: j.created_at, reverse=True)[:QUEUE_LIMIT]
        tabs = len(self._linked_from)
        core.pipeline.record_delivery([job.id for job in changes.jobs], changes.seq, tabs)
        for job in changes.jobs:
            log_step(
                log,
                "feed.pushed",
                job_id=job.id,
                project_id=self.project_id,
                seq=changes.seq,
                status=job.status,
                version=job.version,
                tabs=tabs,
            )
        return changes

    # user actions ----------------------------------------------------------
    async def _run(
        self, work: Callable[[], Awaitable[object]], *, node_id: int = 0, job_id: str = "", image_url: str = ""
    ) -> EventSpec | list[EventSpec] | None:
        """Check the viewer may act here, run a core action, then show its effect in every tab.

        The tab's project must be the viewer's, the node or job acted on must belong to
        that project, and an image added must be one of the viewer's. A refused action
        becomes a toast.
        """
        viewer = await current_viewer(self)
        if viewer is None:
            return to_login()
        try:
            await asyncio.to_thread(self._authorize, viewer.id, node_id, job_id, image_url)
            await work()
        except (InvalidInput, NotFound, ProviderError) as exc:
            return rx.toast.error(str(exc))
        await self.catch_up()
        return None

    def _authorize(self, user_id: int, node_id: int, job_id: str, image_url: str) -> None:
        # A node or job in this project proves the user owns the project: one check, not two.
        if node_id:
            in_project = core.access.node(user_id, node_id) == self.project_id
        elif job_id:
            in_project = core.access.job(user_id, job_id) == self.project_id
        else:
            core.access.project(user_id, self.project_id)
            in_project = True
        if not in_project:
            raise NotFound(f"{'Node' if node_id else 'Job'} {node_id or job_id} not found")
        if image_url and not core.access.may_see_media(user_id, image_url):
            raise NotFound("That image is not one of yours")

    @staticmethod
    def _in_thread(action: Callable[[], object]) -> Callable[[], Awaitable[object]]:
        return lambda: asyncio.to_thread(action)

    @rx.event
    async def add_text_node(self):
        return await self._run(self._in_thread(lambda: core.canvas.add_node(self.project_id, NodeKind.TEXT_TO_IMAGE)))

    @rx.event
    async def add_edit_node(self):
        return await self._run(self._in_thread(lambda: core.canvas.add_node(self.project_id, NodeKind.IMAGE_EDIT)))

    @rx.event
    async def delete_node(self, node_id: int):
        return await self._run(self._in_thread(lambda: core.canvas.delete_node(node_id)), node_id=node_id)

    @rx.event
    async def set_prompt(self, node_id: int, prompt: str):
        return await self._run(
            self._in_thread(lambda: core.canvas.update_node(node_id, prompt=prompt)), node_id=node_id
        )

    @rx.event
    async def set_model(self, node_id: int, model: str):
        return await self._run(self._in_thread(lambda: core.canvas.update_node(node_id, model=model)), node_id=node_id)

    @rx.event
    async def set_aspect_ratio(self, node_id: int, aspect_ratio: str):
        return await self._run(
            self._in_thread(lambda: core.canvas.update_node(node_id, aspect_ratio=aspect_ratio)), node_id=node_id
        )

    @rx.event
    async def add_input(self, node_id: int, image_url: str):
        if not image_url:
            return None
        return await self._run(
            self._in_thread(lambda: core.canvas.change_inputs(node_id, add=[image_url])),
            node_id=node_id,
            image_url=image_url,
        )

    @rx.event
    async def remove_input(self, node_id: int, image_url: str):
        return await self._run(
            self._in_thread(lambda: core.canvas.change_inputs(node_id, remove=[image_url])), node_id=node_id
        )

    @rx.event
    async def generate(self, node_id: int, client_request_id: str, clicked_at_ms: int = 0):
        clicked_at = datetime.fromtimestamp(clicked_at_ms / 1000, UTC) if clicked_at_ms else None
        refused = await self._run(
            lambda: core.pipeline.generate(node_id, client_request_id or None, clicked_at), node_id=node_id
        )
        # The optimistic row of a refused Generate must not linger.
        return [refused, pending_jobs.push([])] if refused else None

    @rx.event
    async def cancel_job(self, job_id: str):
        return await self._run(lambda: core.pipeline.cancel(job_id), job_id=job_id)

    @rx.event
    async def retry_job(self, job_id: str):
        return await self._run(lambda: core.pipeline.retry_job(job_id), job_id=job_id)

    # projects ----------------------------------------------------------------
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
    async def rename_project(self, name: str):
        return await self._run(self._in_thread(lambda: core.canvas.rename_project(self.project_id, name)))

    @rx.event
    async def refresh_projects(self):
        """Projects made or renamed in another project's tabs are not in this feed: reread on focus."""
        viewer = await current_viewer(self)
        if viewer is not None:
            self.projects = await asyncio.to_thread(core.canvas.list_projects, viewer.id)

    @rx.event
    def switch_project(self, project_id: str):
        return rx.redirect(f"/p/{project_id}")


def _merge(current: list[T], updated: list[T], deleted: list[int], key: Callable[[T], Any]) -> list[T]:
    """Replace rows by key, keeping the newer `version`; append new ones; drop deleted."""
    by_key = {key(row): row for row in current}
    for row in updated:
        old = by_key.get(key(row))
        if old is None or getattr(row, "version", 0) >= getattr(old, "version", 0):
            by_key[key(row)] = row
    for gone in deleted:
        by_key.pop(gone, None)
    return list(by_key.values())
