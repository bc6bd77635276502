"""A provider that fails in a way that may pass: the job waits in `queued`, saying for whom and
until when, for as long as `SUBMIT_RETRY_FOR_S`; Cancel ends the wait for good."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import httpx
import pytest
import respx
from pydantic import ValidationError

from core.contract import JobStatus
from core.root import Core
from core.settings import Settings
from models.tables import utcnow
from models.views import JobView
from tests.kie_mock import CREATE, ok, submitted
from tests.wait import job_reaches


def row(core: Core, job_id: str) -> JobView:
    """The job's row as every tab gets it."""
    [view] = [j for j in core.canvas.snapshot(core.jobs.get(job_id).project_id).jobs if j.id == job_id]
    return view


async def waiting_job(core: Core, node_id: int) -> str:
    """A job whose first try failed and whose next one is half a minute away (the backoff's cap)."""
    core.pipeline.retry = replace(core.pipeline.retry, base_s=60.0)
    return await submitted(core, node_id)


async def test_a_failing_provider_keeps_the_job_queued_saying_for_whom_and_until_when(
    kie_core: Core, kie_node: int, kie_api: respx.MockRouter
) -> None:
    kie_api.post(CREATE).mock(side_effect=httpx.ConnectError("refused"))
    before = utcnow()
    job_id = await waiting_job(kie_core, kie_node)
    view = row(kie_core, job_id)
    assert view.status == "queued" and view.error == ""
    assert view.waiting_reason == "waiting for KIE.ai"
    # An absolute time, so every tab counts down to the same instant whenever its row arrived.
    retry_at = datetime.fromisoformat(view.retry_at)
    assert before + timedelta(seconds=29) <= retry_at <= utcnow() + timedelta(seconds=31)
    assert view.version > 1  # a change the tabs were sent
    [step] = [s for s in kie_core.jobs.timeline(job_id).steps if s.step == "submit.retry_scheduled"]
    assert "unreachable" in step.detail and "next try in 30 s" in step.detail


async def test_the_next_try_comes_by_itself_and_ends_the_wait(
    kie_core: Core, kie_node: int, kie_api: respx.MockRouter
) -> None:
    route = kie_api.post(CREATE).mock(side_effect=[httpx.Response(503), ok({"taskId": "t1"})])
    view = await kie_core.pipeline.generate(kie_node)
    await job_reaches(kie_core, view.id, JobStatus.SUBMITTED)
    assert route.call_count == 2
    submitted = row(kie_core, view.id)
    assert (submitted.waiting_reason, submitted.retry_at) == ("", "")
    steps = [s.step for s in kie_core.jobs.timeline(view.id).steps]
    assert steps.index("submit.retry_scheduled") < steps.index("status.submitted")


async def test_cancel_during_the_wait_cancels_and_no_later_try_submits(
    kie_core: Core, kie_node: int, kie_api: respx.MockRouter
) -> None:
    route = kie_api.post(CREATE).mock(side_effect=[httpx.ConnectError("refused"), ok({"taskId": "t1"})])
    job_id = await waiting_job(kie_core, kie_node)
    assert await kie_core.pipeline.cancel(job_id)
    cancelled = row(kie_core, job_id)
    assert cancelled.status == "cancelled" and (cancelled.waiting_reason, cancelled.retry_at) == ("", "")
    # Whatever would have tried next (this worker's timer, any worker's sweep) finds it cancelled.
    await kie_core.pipeline.submit(job_id)
    await kie_core.pipeline.resume_unfinished()
    await kie_core.pipeline.drain()
    assert route.call_count == 1
    assert kie_core.jobs.get(job_id).status == JobStatus.CANCELLED


async def test_retry_after_sets_the_next_try(kie_core: Core, kie_node: int, kie_api: respx.MockRouter) -> None:
    kie_api.post(CREATE).respond(429, headers={"Retry-After": "120"}, json={"code": 429, "msg": "slow down"})
    before = utcnow()
    view = await kie_core.pipeline.generate(kie_node)
    await kie_core.pipeline.drain()
    retry_at = datetime.fromisoformat(row(kie_core, view.id).retry_at)
    assert before + timedelta(seconds=120) <= retry_at <= utcnow() + timedelta(seconds=122)


def test_the_retired_attempt_count_stops_the_start_with_what_replaced_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUBMIT_ATTEMPTS", "7")
    with pytest.raises(ValidationError, match=r"SUBMIT_ATTEMPTS is no longer read.*SUBMIT_RETRY_FOR_S"):
        Settings()
