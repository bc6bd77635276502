"""`Check realtime`: runs the core's self-test for this tab's project and shows each hop as it lands."""

from __future__ import annotations

import asyncio

import reflex as rx

from core.errors import NotFound
from core.logs import get_logger, log_step
from core.realtime.selftest import FAILED, Hop, RealtimeCheck
from rxapp.runtime import core
from rxapp.states.viewer import current_viewer

log = get_logger("selftest")


class RealtimeCheckState(rx.State):
    hops: list[Hop] = []
    running: bool = False
    #: "" before the first run, then "passed" or "failed".
    outcome: str = ""

    @rx.event(background=True)
    async def run(self, project_id: int):
        """A background task: the check takes seconds, and this tab must keep receiving (and confirming) pushes."""
        async with self:
            if self.running:
                return
            viewer = await current_viewer(self)
            self.hops, self.outcome = [], ""
            self.running = viewer is not None
        if viewer is None:
            return
        try:
            await asyncio.to_thread(core.access.project, viewer.id, project_id)
        except NotFound as exc:
            async with self:
                self.running = False
            log_step(log, "selftest.refused", project_id=project_id, user_id=viewer.id)
            yield rx.toast.error(str(exc))
            return

        async def shown(hop: Hop) -> None:
            async with self:
                self.hops = [*self.hops, hop]

        hops = await RealtimeCheck(core).run(project_id, shown)
        async with self:
            self.running = False
            self.outcome = "failed" if any(h.verdict == FAILED for h in hops) else "passed"
