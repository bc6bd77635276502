"""A job is submitted to its provider once: through provider backoffs, database outages and worker takeovers."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from core import pipeline as pipeline_module
from core.contract import JobStatus, NodeKind, ProviderError, SubmitRequest, TaskRef
from core.db import Database
from core.retries import RetryPolicy
from core.root import Core
from core.settings import Settings
from models.tables import utcnow

LEASE_S = 1.0


async def test_a_submission_backing_off_holds_its_claim_past_the_lease(
    make_core, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        data_dir=tmp_path, database_url=database_url, local_delay_s=0.05, work_lease_s=LEASE_S, retry_base_s=0.01
    )
    core: Core = make_core(settings)
    job = core.jobs.get(queued_job(core))
    provider = core.registry.get(job.provider)
    submit = provider.submit
    other_worker_took_it: list[bool] = []

    async def busy_once(request: SubmitRequest) -> TaskRef:
        if not other_worker_took_it:
            other_worker_took_it.append(False)
            raise ProviderError("busy, try again", retryable=True)
        # The next try, after the backoff: a worker looking past the first lease must find it held.
        later = utcnow() + timedelta(seconds=LEASE_S * 1.5)
        other_worker_took_it.append(core.jobs.claim(job.id, "another worker", later, LEASE_S))
        return await submit(request)

    monkeypatch.setattr(provider, "submit", busy_once)
    await core.pipeline.submit(job.id)
    assert other_worker_took_it == [False, False]
    assert core.jobs.get(job.id).provider_task_id


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
