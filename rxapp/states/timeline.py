"""A queue row's timeline, per tab: which job is expanded and its steps.

The shared job row carries `steps` (how many the timeline has); a hidden element
is keyed on the expanded job's count, so when another step lands anywhere it
remounts and reloads the timeline: live in every tab without polling.
"""

from __future__ import annotations

import asyncio

import reflex as rx

from core.errors import NotFound
from core.logs import get_logger, log_step
from models.views import StepView
from rxapp.runtime import core
from rxapp.states.viewer import current_viewer

log = get_logger("timeline")


class TimelineState(rx.State):
    expanded: str = ""
    steps: list[StepView] = []
    stalled: str = ""

    @rx.event
    async def toggle(self, job_id: str):
        if self.expanded == job_id:
            self.expanded, self.steps, self.stalled = "", [], ""
            return
        self.expanded = job_id
        await self.reload()  # type: ignore[operator]  # an @rx.event handler: see pyproject

    @rx.event
    async def reload(self):
        if not self.expanded:
            return
        viewer = await current_viewer(self)
        try:
            if viewer is None:
                raise NotFound("signed out")
            await asyncio.to_thread(core.access.job, viewer.id, self.expanded)
            timeline = await asyncio.to_thread(core.jobs.timeline, self.expanded)
        except NotFound:
            self.expanded, self.steps, self.stalled = "", [], ""
            return
        self.steps, self.stalled = timeline.steps, timeline.stalled
        log_step(log, "timeline.read", job_id=self.expanded, steps=len(timeline.steps))
