"""One suite every provider passes, local included, through its fake or mock."""

from __future__ import annotations

from dataclasses import replace

import pytest

from core.contract import JobStatus, TaskRef, WebhookRejected
from core.root import Core
from models.tables import Job
from tests.providers.harness import Harness
from tests.wait import eventually


async def submitted_job(core: Core, node_id: int) -> Job:
    view = await core.pipeline.generate(node_id)
    await core.pipeline.drain()
    return core.jobs.get(view.id)


def task_of(job: Job) -> TaskRef:
    assert job.provider_task_id
    return TaskRef(job.provider_task_id, job.provider_handle)


async def test_submit_returns_a_task(harness: Harness, conformance_core: Core, node_id: int) -> None:
    job = await submitted_job(conformance_core, node_id)
    assert job.status == JobStatus.SUBMITTED
    assert job.provider == harness.name
    assert job.provider_task_id


@pytest.mark.parametrize("status", [JobStatus.SUBMITTED, JobStatus.RUNNING, JobStatus.COMPLETED, JobStatus.FAILED])
async def test_status_maps_to_the_apps_statuses(
    harness: Harness, conformance_core: Core, node_id: int, status: JobStatus
) -> None:
    task = task_of(await submitted_job(conformance_core, node_id))
    harness.report(task, status)
    update = await conformance_core.registry.get(harness.name).query(task)
    assert (update.task_id, update.status) == (task.task_id, status)
    if status == JobStatus.COMPLETED:
        assert update.result_urls
    if status == JobStatus.FAILED:
        assert update.error and len(update.error) > 10


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.FAILED])
async def test_webhook_parses_success_and_failure(
    harness: Harness, conformance_core: Core, node_id: int, status: JobStatus
) -> None:
    task = task_of(await submitted_job(conformance_core, node_id))
    update = await conformance_core.registry.get(harness.name).parse_webhook(*harness.webhook(task, status))
    assert (update.task_id, update.status, update.verified) == (task.task_id, status, True)
    assert bool(update.result_urls) is (status == JobStatus.COMPLETED)
    assert bool(update.error) is (status == JobStatus.FAILED)


async def test_a_webhook_completes_the_job(harness: Harness, conformance_core: Core, node_id: int) -> None:
    job = await submitted_job(conformance_core, node_id)
    harness.report(task_of(job), JobStatus.COMPLETED)
    headers, body = harness.webhook(task_of(job), JobStatus.COMPLETED)
    outcome = await conformance_core.webhooks.receive(harness.name, job.id, job.callback_token, headers, body)
    assert outcome.status_code == 200, outcome.message
    done = conformance_core.jobs.get(job.id)
    assert done.status == JobStatus.COMPLETED and done.image_path


async def test_forged_webhook_is_rejected_and_changes_nothing(
    harness: Harness, conformance_core: Core, node_id: int
) -> None:
    if not harness.signs:
        pytest.skip(f"{harness.name} does not sign its webhooks")
    job = await submitted_job(conformance_core, node_id)
    headers, body = harness.webhook(task_of(job), JobStatus.COMPLETED, forged=True)
    with pytest.raises(WebhookRejected) as caught:
        await conformance_core.registry.get(harness.name).parse_webhook(headers, body)
    assert caught.value.status_code == 401
    outcome = await conformance_core.webhooks.receive(harness.name, job.id, job.callback_token, headers, body)
    assert outcome.status_code == 401
    after = conformance_core.jobs.get(job.id)
    assert (after.status, after.version) == (job.status, job.version)


async def test_polling_completes_a_job_whose_webhook_never_came(
    harness: Harness, conformance_core: Core, node_id: int
) -> None:
    job = await submitted_job(conformance_core, node_id)
    harness.report(task_of(job), JobStatus.COMPLETED)
    assert await conformance_core.poller.poll_due() == 1
    done = conformance_core.jobs.get(job.id)
    assert done.status == JobStatus.COMPLETED and done.image_path


async def test_duplicate_and_out_of_order_deliveries_are_no_ops(
    harness: Harness, conformance_core: Core, node_id: int
) -> None:
    job = await submitted_job(conformance_core, node_id)
    task = task_of(job)
    harness.report(task, JobStatus.COMPLETED)  # a provider calls back about the state its task is in
    completed = harness.webhook(task, JobStatus.COMPLETED)
    late_failure = harness.webhook(task, JobStatus.FAILED)
    # The same delivery twice, and a different late one, are harmless no-ops that the sender must
    # not be told to send again (a 4xx makes Replicate and Fal.ai resend).
    for (headers, body), expected in ((completed, 200), (completed, 200), (late_failure, 200)):
        outcome = await conformance_core.webhooks.receive(harness.name, job.id, job.callback_token, headers, body)
        assert outcome.status_code == expected, outcome.message
    done = conformance_core.jobs.get(job.id)
    assert done.status == JobStatus.COMPLETED
    assert done.version == job.version + 1
    assert len(conformance_core.canvas.snapshot(done.project_id).nodes[0].history) == 1


async def test_a_failure_reads_well_in_the_queue(harness: Harness, conformance_core: Core, node_id: int) -> None:
    prompt, expected = harness.make_next_job_fail()
    conformance_core.canvas.update_node(node_id, prompt=prompt)
    view = await conformance_core.pipeline.generate(node_id)

    async def after_a_poll() -> Job:
        await conformance_core.pipeline.drain()
        await conformance_core.poller.poll_due()
        return conformance_core.jobs.get(view.id)

    job = await eventually(after_a_poll, lambda job: job.status.is_terminal, what="the job to finish")
    assert job.status == JobStatus.FAILED
    assert expected in (job.error or "")
    assert conformance_core.canvas.snapshot(job.project_id).nodes[0].error == job.error


async def test_a_task_past_its_providers_longest_run_is_given_up_and_cancelled_where_possible(
    harness: Harness, conformance_core: Core, node_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = await submitted_job(conformance_core, node_id)
    provider = conformance_core.registry.get(harness.name)
    # The provider's longest run and the poll margin (`POLL_CAP_S`, 0 here) are over at once.
    monkeypatch.setattr(provider, "max_run_s", 0.0)
    monkeypatch.setattr(conformance_core.poller, "policy", replace(conformance_core.poller.policy, cap_s=0.0))
    assert await conformance_core.poller.poll_due() == 1
    given_up = conformance_core.jobs.get(job.id)
    assert given_up.status == JobStatus.FAILED
    assert f"No result from {provider.label} after" in (given_up.error or "")
    assert "gave up waiting (timeout)" in (given_up.error or "")
    assert harness.cancelled(task_of(job)) is provider.can_cancel
    [step] = [s for s in conformance_core.jobs.timeline(job.id).steps if s.step == "poll.gave_up"]
    if provider.can_cancel:
        assert step.detail == f"cancelled at {provider.label}"
    else:
        assert step.detail == f"{provider.label} has no cancel; its result will be ignored"
