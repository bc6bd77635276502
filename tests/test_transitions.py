"""The job's one rule (`core.jobs.transitions.decide`), on plain values."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.contract import JobStatus
from core.jobs.transitions import JobEvent, JobFacts, decide

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
ORDER = [JobStatus.QUEUED, JobStatus.SUBMITTED, JobStatus.RUNNING]
ENDS = [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED]


@pytest.mark.parametrize("current", ORDER + ENDS)
@pytest.mark.parametrize("wanted", ORDER + ENDS)
def test_a_status_only_moves_forward_and_an_end_is_final(current: JobStatus, wanted: JobStatus) -> None:
    transition = decide(JobFacts(current), JobEvent(wanted), NOW)
    forward = not current.is_terminal and (wanted.is_terminal or ORDER.index(wanted) > ORDER.index(current))
    assert (transition is not None) is forward


def test_a_completion_ends_the_job_settles_its_node_and_grants_its_image() -> None:
    job = JobFacts(JobStatus.RUNNING, provider_task_id="task-9")
    event = JobEvent(JobStatus.COMPLETED, {"image_path": "/media/a.png"}, [("image.stored", "/media/a.png")])
    transition = decide(job, event, NOW)
    assert transition is not None
    assert transition.fields == {
        "image_path": "/media/a.png",
        "status": JobStatus.COMPLETED,
        "updated_at": NOW,
        "progress": "",
        "finished_at": NOW,
        "retry_at": None,
        "waiting_reason": "",
    }
    assert transition.steps == [("image.stored", "/media/a.png"), ("status.completed", "task-9")]
    assert (transition.settles, transition.grants_image) == (True, "/media/a.png")


def test_a_failure_names_its_error_and_grants_nothing() -> None:
    transition = decide(JobFacts(JobStatus.SUBMITTED), JobEvent(JobStatus.FAILED, {"error": "too big"}), NOW)
    assert transition is not None
    assert transition.steps == [("status.failed", "too big")]
    assert (transition.settles, transition.grants_image) == (True, None)


def test_staying_queued_changes_fields_only_and_keeps_the_countdown() -> None:
    retry_at = datetime(2026, 12, 6, 12, 1, tzinfo=UTC)
    event = JobEvent(JobStatus.QUEUED, {"retry_at": retry_at}, [("submit.retry_scheduled", "in 60 s")], stay=True)
    transition = decide(JobFacts(JobStatus.QUEUED), event, NOW)
    assert transition is not None
    assert transition.fields == {"retry_at": retry_at, "status": JobStatus.QUEUED, "updated_at": NOW}
    assert transition.steps == [("submit.retry_scheduled", "in 60 s")]  # no status step: it did not move
    assert not transition.settles
    assert decide(JobFacts(JobStatus.CANCELLED), event, NOW) is None  # cancelled meanwhile: nothing to wait for


def test_leaving_queued_ends_the_countdown() -> None:
    transition = decide(JobFacts(JobStatus.QUEUED), JobEvent(JobStatus.SUBMITTED, {"provider_task_id": "t"}), NOW)
    assert transition is not None
    assert (transition.fields["retry_at"], transition.fields["waiting_reason"]) == (None, "")
    assert transition.steps == [("status.submitted", "t")]


@pytest.mark.parametrize("current", [JobStatus.RUNNING, JobStatus.COMPLETED, JobStatus.FAILED])
def test_a_submission_its_providers_callback_overtook_keeps_the_status_and_records_the_task(
    current: JobStatus,
) -> None:
    """A fast provider called back `running` before the submit's answer was written: dropping the
    submission left the job without a task to poll, and its worker cancelled the task (a job
    `running` for good)."""
    submitted = JobEvent(JobStatus.SUBMITTED, {"provider_task_id": "t-1", "submitted_at": NOW, "next_poll_at": NOW})
    transition = decide(JobFacts(current), submitted, NOW)
    assert transition is not None and not transition.settles and transition.grants_image is None
    assert "status" not in transition.fields
    assert transition.fields == {"provider_task_id": "t-1", "submitted_at": NOW, "next_poll_at": NOW, "updated_at": NOW}
    assert transition.steps == [("provider.task_recorded", "t-1")]


def test_a_submission_after_a_cancel_or_a_recorded_task_is_dropped() -> None:
    """A cancelled job's worker stops the task it was just given; a task already written stays."""
    submitted = JobEvent(JobStatus.SUBMITTED, {"provider_task_id": "t-2"})
    assert decide(JobFacts(JobStatus.CANCELLED), submitted, NOW) is None
    assert decide(JobFacts(JobStatus.RUNNING, provider_task_id="t-1"), submitted, NOW) is None
