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

#: The chain's own bookkeeping (fan-out, deliveries, tabs, duplicate callbacks, throttling):
#: shown under `Details`. The rest (clicked, created, submitted, received, stored, its status)
#: is what the user did and what became of it, shown by default.
INTERNAL_STEPS = (
    "change.",
    "feed.",
    "room.",
    "tab.",
    "webhook.confirmed",
    "webhook.duplicate",
    "webhook.unconfirmed",
    "webhook.rejected",
    "poll.answered",
    "poll.failed",
    "submit.throttled",
    "provider.record_retried",
    "provider.task_recorded",
    "job.update_dropped",
)


class TimelineState(rx.State):
    expanded: str = ""
    steps: list[StepView] = []
    stalled: str = ""
    #: Internal steps shown too (`Details`).
    details: bool = False

    @rx.var
    def shown_steps(self) -> list[StepView]:
        if self.details:
            return self.steps
        return [s for s in self.steps if not s.step.startswith(INTERNAL_STEPS)]

    @rx.event
    def toggle_details(self):
        self.details = not self.details

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
            timeline = await core.async_jobs.timeline(self.expanded)
        except NotFound:
            self.expanded, self.steps, self.stalled = "", [], ""
            return
        self.steps, self.stalled = timeline.steps, timeline.stalled
        log_step(log, "timeline.read", job_id=self.expanded, steps=len(timeline.steps))
