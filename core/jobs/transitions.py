"""The job's one rule, on plain values: what an event does to a job, decided without a database.

`decide(job, event, now)` returns the `Transition` to write (every column that changes, the
timeline steps, and the effects: the node shows the outcome, the project is granted the
result) or None when the event is stale. `JobBook._advance` reads the row, asks here, and
writes the answer in one transaction; the rule itself is tested on values, as the notebook's
`staleness.judge` is.

The rule: a status only moves forward (`JobStatus.rank`), so a late or doubled update is
dropped, never moves a job back; `stay` keeps the status and changes only fields (a queued
job waiting for its next submit try); a terminal status clears the live progress and sets
`finished_at`; leaving `queued` ends the countdown to a retry. One exception writes without
moving: a submission its provider's callback overtook still records the task it runs as.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from core.contract import JobStatus


@dataclass(frozen=True)
class JobFacts:
    """What the rule reads of a job."""

    status: JobStatus
    error: str | None = None
    provider_task_id: str | None = None
    image_path: str | None = None


@dataclass(frozen=True)
class JobEvent:
    """What happened: the status it brings, the fields it sets, the steps just before it."""

    status: JobStatus
    fields: Mapping[str, object] = field(default_factory=dict)
    steps: Sequence[tuple[str, str]] = ()
    #: The job keeps its status `status` and only `fields` change.
    stay: bool = False


@dataclass(frozen=True)
class Transition:
    #: Every column to write, status included.
    fields: dict[str, object]
    #: Timeline steps, in order.
    steps: list[tuple[str, str]]
    #: The job ended: its node shows the outcome and the run plan moves on.
    settles: bool
    #: A stored result the project's members may now see.
    grants_image: str | None


def decide(job: JobFacts, event: JobEvent, now: datetime) -> Transition | None:
    """The transition `event` makes, or None when it is stale (it would move the job back or sideways)."""
    if _overtaken_submission(job, event):
        # The provider's own callback (`running`, even `completed`) came in before the submit's
        # answer was written: the job stays where the callback put it, and keeps the task it
        # runs as. Dropped, the job had no task to poll and its worker, taking it for cancelled,
        # cancelled the task at the provider: a job `running` for good (a CI run, 1 in 230).
        recorded = {name: value for name, value in event.fields.items() if name in SUBMISSION_FIELDS}
        steps = [("provider.task_recorded", _task_of(event))]
        return Transition({**recorded, "updated_at": now}, steps, settles=False, grants_image=None)
    if (event.status != job.status) if event.stay else (event.status.rank <= job.status.rank):
        return None
    fields: dict[str, object] = {**event.fields, "status": event.status, "updated_at": now}
    terminal = event.status.is_terminal
    if terminal:
        fields.update(progress="", finished_at=now)
    if not event.stay:  # out of the wait for a retry: the row no longer counts down
        fields.update(retry_at=None, waiting_reason="")
    steps = list(event.steps)
    if not event.stay:
        error = fields.get("error", job.error)
        task_id = fields.get("provider_task_id", job.provider_task_id)
        steps.append((f"status.{event.status.value}", str(error or task_id or "")))
    image = fields.get("image_path", job.image_path)
    grants = str(image) if image and event.status == JobStatus.COMPLETED else None
    return Transition(fields, steps, settles=terminal, grants_image=grants)


#: What a submission writes besides its status (`JobBook.mark_submitted`).
SUBMISSION_FIELDS = frozenset({"provider_task_id", "provider_handle", "submitted_at", "next_poll_at"})


def _task_of(event: JobEvent) -> str:
    return str(event.fields.get("provider_task_id") or "")


def _overtaken_submission(job: JobFacts, event: JobEvent) -> bool:
    """A submission whose job moved on without it, other than by a cancel (whose worker must
    stop the task it was just given)."""
    return (
        event.status == JobStatus.SUBMITTED
        and not event.stay
        and not job.provider_task_id
        and bool(_task_of(event))
        and job.status.rank > JobStatus.SUBMITTED.rank
        and job.status != JobStatus.CANCELLED
    )
