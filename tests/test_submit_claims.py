"""A job is submitted to its provider once: through provider backoffs, database outages and worker takeovers."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from core.contract import JobStatus, NodeKind, Provider, ProviderError, SubmitRequest, TaskRef
from core.db import Database
from core.jobs import pipeline as pipeline_module
from core.retries import RetryPolicy
from core.root import Core
from core.settings import Settings
from models.tables import utcnow

LEASE_S = 1.0


async def test_a_job_waiting_for_its_next_try_holds_no_worker_and_is_submitted_once_when_due(
    make_core, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        local_delay_s=0.05,
        work_lease_s=LEASE_S,
        retry_base_s=60,  # the next try is half a minute away (the cap)
    )
    core: Core = make_core(settings)
    other: Core = make_core(settings)  # a second worker on the same database
    other.pipeline.worker_id = "another worker"
    job_id = queued_job(core)
    tries: list[str] = []

    def busy_once(provider: Provider) -> None:
        submit = provider.submit

        async def busy(request: SubmitRequest) -> TaskRef:
            tries.append(request.job_id)
            if len(tries) == 1:
                raise ProviderError("busy, try again", retryable=True)
            return await submit(request)

        monkeypatch.setattr(provider, "submit", busy)

    busy_once(core.registry.get("local"))
    busy_once(other.registry.get("local"))
    await core.pipeline.submit(job_id)
    waiting = core.jobs.get(job_id)
    assert waiting.status == JobStatus.QUEUED and waiting.claimed_by is None  # nobody asleep holding it
    assert waiting.retry_at is not None and waiting.retry_at > utcnow() + timedelta(seconds=25)  # capped at 30 s
    # Not due: every worker's sweep leaves it alone, past any lease.
    for pipeline in (core.pipeline, other.pipeline):
        await pipeline.resume_unfinished()
        await pipeline.drain()
    assert tries == [job_id]
    # Due (as after a restart, whose timers are gone): both workers sweep at once, one submits.
    core.pipeline.forget_retries()
    assert core.jobs.wait_to_retry(job_id, utcnow() - timedelta(seconds=1), "the local provider", "busy")
    await asyncio.gather(core.pipeline.resume_unfinished(), other.pipeline.resume_unfinished())
    await asyncio.gather(core.pipeline.drain(), other.pipeline.drain())
    assert tries == [job_id, job_id]
    done = core.jobs.get(job_id)
    assert done.status == JobStatus.SUBMITTED and done.provider_task_id
    assert done.retry_at is None and done.waiting_reason == ""


def queued_job(core: Core) -> str:
    project = core.canvas.ensure_default_project(core.accounts.local_user().id)
    node = core.canvas.add_node(project.id, NodeKind.TEXT_TO_IMAGE)
    core.canvas.update_node(node.id, prompt="a fox")
    return core.jobs.create(node.id).id


async def test_the_accepted_task_is_written_down_through_a_database_outage(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Measured in the fault suite: PostgreSQL restarted between the provider's answer and the write
    lost the task id, and once the claim ran out another worker submitted the job a second time."""
    job_id = queued_job(core)
    provider = core.registry.get(core.jobs.get(job_id).provider)
    submit, submitted = provider.submit, []

    async def counted(request: SubmitRequest) -> TaskRef:
        submitted.append(request.job_id)
        return await submit(request)

    mark_submitted, refused = core.jobs.mark_submitted, []

    def database_restarting(*args: object, **kwargs: object) -> bool:
        if len(refused) < 2:
            refused.append(True)
            raise OperationalError("UPDATE job", {}, Exception("server closed the connection unexpectedly"))
        return mark_submitted(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(provider, "submit", counted)
    monkeypatch.setattr(core.jobs, "mark_submitted", database_restarting)
    monkeypatch.setattr(pipeline_module, "RECORD_RETRY", RetryPolicy(attempts=5, base_s=0.01, cap_s=0.01))
    # The task stays submitted while the test looks (on a busy machine the fixture's 0.05 s
    # render had it running before the retries were done).
    monkeypatch.setattr(provider, "delay_s", 60)
    await core.pipeline.submit(job_id)
    job = core.jobs.get(job_id)
    assert (refused, submitted) == ([True, True], [job_id])
    assert job.status == JobStatus.SUBMITTED and job.provider_task_id


async def test_nothing_is_taken_over_for_a_lease_after_the_database_was_gone(core: Core) -> None:
    job_id = queued_job(core)
    # Claimed by a worker whose lease ran out while nobody could reach the database.
    assert core.jobs.claim(job_id, "a worker writing its task down", utcnow() - timedelta(minutes=5), 1.0)
    core.pipeline.database_lost_within = lambda seconds: True
    await core.pipeline.resume_unfinished()
    await core.pipeline.drain()
    assert core.jobs.get(job_id).status == JobStatus.QUEUED
    core.pipeline.database_lost_within = lambda seconds: False  # one lease later
    await core.pipeline.resume_unfinished()
    await core.pipeline.drain()
    assert core.jobs.get(job_id).status != JobStatus.QUEUED


def test_a_database_that_does_not_answer_is_noted(tmp_path: Path) -> None:
    gone = Database("postgresql+psycopg://postgres@127.0.0.1:9/nowhere?connect_timeout=2")
    assert not gone.lost_within(60)
    with pytest.raises(OperationalError):
        gone.ping()
    assert gone.lost_within(60)
    here = Database(f"sqlite:///{tmp_path / 'canvas.db'}")
    here.ping()
    assert not here.lost_within(60)
