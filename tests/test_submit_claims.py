"""A submission backing off between provider tries keeps its claim: no other worker submits the job too."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from core.contract import NodeKind, ProviderError, SubmitRequest, TaskRef
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
    project = core.canvas.ensure_default_project(core.accounts.local_user().id)
    node = core.canvas.add_node(project.id, NodeKind.TEXT_TO_IMAGE)
    core.canvas.update_node(node.id, prompt="a fox")
    job = core.jobs.create(node.id)
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
