"""Every job keeps a timeline of its way through the update chain."""

from __future__ import annotations

from datetime import timedelta

from core.contract import JobStatus, TaskRef
from core.root import Core
from models.tables import utcnow
from tests.wait import job_reaches


async def test_a_local_job_records_every_step_in_order(core: Core, node_id: int) -> None:
    clicked = utcnow() - timedelta(milliseconds=40)
    view = await core.pipeline.generate(node_id, "r1", clicked)
    await job_reaches(core, view.id, JobStatus.COMPLETED)
    await core.pipeline.drain()
    timeline = core.jobs.timeline(view.id)
    steps = [s.step for s in timeline.steps]
    assert steps[:3] == ["generate.clicked", "job.created", "change.published"]
    for expected in (
        "status.submitted",
        "webhook.received",
        "status.running",
        "image.downloaded",
        "image.stored",
        "status.completed",
    ):
        assert expected in steps, expected
    assert steps.index("image.downloaded") < steps.index("image.stored") < steps.index("status.completed")
    # Last: the completion's change event. ("room.delivered" comes after it only where a room
    # bridge pushes the change to tabs; this core has none.)
    assert steps[-1] == "change.published"
    assert timeline.steps[0].offset_ms == 0 and timeline.steps[1].offset_ms >= 40
    assert all(s.delta_ms >= 0 for s in timeline.steps)
    received = next(s for s in timeline.steps if s.step == "webhook.received")
    assert "signature verified" in received.detail
    downloaded = next(s for s in timeline.steps if s.step == "image.downloaded")
    assert "bytes in" in downloaded.detail
    assert core.jobs.get(view.id).steps == len(timeline.steps)
    assert timeline.stalled == ""


def test_a_quiet_unfinished_job_is_flagged_with_the_reason(core: Core, node_id: int) -> None:
    job = core.jobs.create(node_id)
    core.jobs.mark_submitted(job.id, TaskRef("t"))
    core.jobs.record(job.id, "poll.failed", "attempt 3: KIE.ai is under maintenance (455)")
    later = utcnow() + timedelta(minutes=10)
    stalled = core.jobs.timeline(job.id, now=later).stalled
    assert stalled.startswith("No progress for 10 min since poll.failed")
    assert "polling is failing: attempt 3: KIE.ai is under maintenance (455)" in stalled
    assert core.jobs.timeline(job.id).stalled == ""
    core.jobs.complete(job.id, "/media/x.png")
    assert core.jobs.timeline(job.id, now=later).stalled == ""


def test_announced_steps_reach_the_feed_and_delivery_steps_do_not(core: Core, project_id: int, node_id: int) -> None:
    job = core.jobs.create(node_id)
    seq = core.canvas.snapshot(project_id).seq
    core.jobs.record(job.id, "poll.answered", "attempt 1: running")
    changes = core.canvas.changes(project_id, seq)
    assert [j.steps for j in changes.jobs] == [core.jobs.get(job.id).steps]
    core.jobs.record(job.id, "feed.delivered", "seq 9 to 2 tabs", announce=False)
    assert core.canvas.changes(project_id, changes.seq).jobs == []
