"""Fallback polling, retries and webhook confirmation, with KIE.ai mocked by respx."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import httpx
import pytest
import respx

from core.contract import JobStatus, NodeKind, ProviderError, TaskRef
from core.media import fetch as fetch_module
from core.retries import RetryPolicy
from core.root import Core
from providers.kie import TEXT_MODEL
from providers.local_render import render_text_to_image
from tests.kie_mock import CREATE, IMAGE_URL, RECORD, ok, record, submitted
from tests.wait import job_reaches


async def test_polling_completes_a_job_whose_webhook_never_came(
    kie_core: Core, kie_node: int, kie_api: respx.MockRouter
) -> None:
    kie_api.post(CREATE).mock(return_value=ok({"taskId": "t1"}))
    polls = kie_api.get(RECORD).mock(side_effect=[record("generating"), record("success")])
    job_id = await submitted(kie_core, kie_node)
    assert kie_core.jobs.get(job_id).status == JobStatus.SUBMITTED
    assert await kie_core.poller.poll_due() == 1
    assert kie_core.jobs.get(job_id).status == JobStatus.RUNNING
    kie_core.jobs.schedule_poll(job_id, kie_core.jobs.get(job_id).submitted_at)  # make it due again now
    await kie_core.poller.poll_due()
    job = kie_core.jobs.get(job_id)
    assert job.status == JobStatus.COMPLETED and job.image_path
    assert polls.call_count == 2


async def test_retryable_submit_errors_are_retried(kie_core: Core, kie_node: int, kie_api: respx.MockRouter) -> None:
    route = kie_api.post(CREATE).mock(
        side_effect=[
            httpx.Response(500, json={"code": 500, "msg": "boom"}),
            httpx.Response(200, json={"code": 429, "msg": "slow down"}),
            httpx.ConnectError("refused"),
            ok({"taskId": "t1"}),
        ]
    )
    job_id = await submitted(kie_core, kie_node)
    await job_reaches(kie_core, job_id, JobStatus.SUBMITTED)  # each try scheduled after the last
    assert route.call_count == 4


async def test_fatal_submit_error_fails_at_once_with_a_readable_message(
    kie_core: Core, kie_node: int, kie_api: respx.MockRouter
) -> None:
    route = kie_api.post(CREATE).respond(json={"code": 402, "msg": "Credits insufficient"})
    job_id = await submitted(kie_core, kie_node)
    job = kie_core.jobs.get(job_id)
    assert route.call_count == 1
    assert job.status == JobStatus.FAILED and "insufficient credits" in (job.error or "")
    node = kie_core.canvas.snapshot(job.project_id).nodes[0]
    assert node.error == job.error


async def test_provider_down_fails_after_the_retries(kie_core: Core, kie_node: int, kie_api: respx.MockRouter) -> None:
    route = kie_api.post(CREATE).mock(side_effect=httpx.ConnectError("refused"))
    kie_core.pipeline.retry = replace(kie_core.pipeline.retry, for_s=0.2)
    job_id = await submitted(kie_core, kie_node)
    job = await job_reaches(kie_core, job_id, JobStatus.FAILED)
    assert route.call_count > 1
    assert "unreachable" in (job.error or "") and "still failing after trying for" in (job.error or "")
    assert job.retry_at is None and job.waiting_reason == ""


async def test_unsigned_callback_is_confirmed_with_record_info(
    kie_core: Core, kie_node: int, kie_api: respx.MockRouter
) -> None:
    kie_api.post(CREATE).mock(return_value=ok({"taskId": "t1"}))
    kie_api.get(RECORD).mock(return_value=record("generating"))
    job_id = await submitted(kie_core, kie_node)
    token = kie_core.jobs.get(job_id).callback_token
    claim = {
        "code": 200,
        "data": {
            "taskId": "t1",
            "state": "success",
            "resultJson": json.dumps({"resultUrls": ["https://evil.test/x.png"]}),
        },
    }
    outcome = await kie_core.webhooks.receive("kie", job_id, token, {}, json.dumps(claim).encode())
    assert outcome.status_code == 200
    job = kie_core.jobs.get(job_id)
    assert job.status == JobStatus.RUNNING  # KIE itself says it is still generating
    assert job.image_path is None


async def test_webhook_and_poll_racing_complete_once(kie_core: Core, kie_node: int, kie_api: respx.MockRouter) -> None:
    kie_api.post(CREATE).mock(return_value=ok({"taskId": "t1"}))
    kie_api.get(RECORD).mock(return_value=record("success"))
    job_id = await submitted(kie_core, kie_node)
    token = kie_core.jobs.get(job_id).callback_token
    body = json.dumps({"code": 200, "data": {"taskId": "t1", "state": "success"}}).encode()
    await asyncio.gather(
        kie_core.poller.poll_due(),
        *(kie_core.webhooks.receive("kie", job_id, token, {}, body) for _ in range(3)),
    )
    job = kie_core.jobs.get(job_id)
    assert job.status == JobStatus.COMPLETED
    assert job.version == 3
    assert len(kie_core.canvas.snapshot(job.project_id).nodes[0].history) == 1


async def test_cancelled_job_ignores_a_late_result(kie_core: Core, kie_node: int, kie_api: respx.MockRouter) -> None:
    kie_api.post(CREATE).mock(return_value=ok({"taskId": "t1"}))
    kie_api.get(RECORD).mock(return_value=record("success"))
    job_id = await submitted(kie_core, kie_node)
    assert await kie_core.pipeline.cancel(job_id)
    kie_core.jobs.schedule_poll(job_id, kie_core.jobs.get(job_id).submitted_at)
    assert await kie_core.poller.poll_due() == 0  # cancelled jobs are not polled
    await kie_core.pipeline.apply(job_id, (await kie_core.registry.get("kie").query(TaskRef("t1"))))
    job = kie_core.jobs.get(job_id)
    assert (job.status, job.image_path) == (JobStatus.CANCELLED, None)


async def test_disabled_model_is_refused_with_its_hint(core: Core, project_id: int) -> None:
    node = core.canvas.add_node(project_id, NodeKind.TEXT_TO_IMAGE)
    core.canvas.update_node(node.id, prompt="x", model=TEXT_MODEL)
    with pytest.raises(ProviderError, match="KIE_API_KEY"):
        await core.pipeline.generate(node.id)


async def test_a_broken_result_download_leaves_the_job_to_the_next_poll(
    kie_core: Core, kie_node: int, kie_api: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fetch_module, "DOWNLOAD_RETRY", RetryPolicy(attempts=2, base_s=0.01, cap_s=0.01))
    kie_api.post(CREATE).mock(return_value=ok({"taskId": "t1"}))
    kie_api.get(RECORD).mock(side_effect=[record("success"), record("success")])
    dropped = httpx.RemoteProtocolError("Server disconnected without sending a response.")
    kie_api.get(IMAGE_URL).mock(
        side_effect=[dropped, dropped, httpx.Response(200, content=render_text_to_image("x", "1:1"))]
    )
    job_id = await submitted(kie_core, kie_node)
    await kie_core.poller.poll_due()
    job = kie_core.jobs.get(job_id)
    assert job.status == JobStatus.SUBMITTED, job.error
    assert "image.download_failed" in [step.step for step in kie_core.jobs.timeline(job_id).steps]
    kie_core.jobs.schedule_poll(job_id, job.submitted_at)  # due again now
    await kie_core.poller.poll_due()
    job = kie_core.jobs.get(job_id)
    assert job.status == JobStatus.COMPLETED and job.image_path
