"""KIE.ai against respx mocks of its public API."""

from __future__ import annotations

import json
import time

import httpx
import pytest
import respx

from core.contract import JobStatus, NodeKind, ProviderError, SubmitLimit, SubmitRequest, TaskRef, WebhookRejected
from core.root import Core
from providers.kie import EDIT_MODEL, ERRORS, RECORD_GRACE_S, TEXT_MODEL, KieProvider
from tests.kie_mock import CREATE, IMAGE_URL, RECORD
from tests.providers.fixtures import load
from tests.providers.harness import Clock
from tests.providers.signing import kie_headers
from tests.wait import eventually

BASE = "https://kie.test"


@pytest.fixture
async def kie():
    async with httpx.AsyncClient() as http:
        yield KieProvider(api_key="key-1", base_url=BASE, http=http, hmac_key="hmac-1")


def request(model: str = TEXT_MODEL, images: tuple[str, ...] = ()) -> SubmitRequest:
    return SubmitRequest(
        job_id="j1",
        model=model,
        prompt="a fox",
        aspect_ratio="16:9",
        callback_url="https://app.test/cb",
        input_image_urls=images,
    )


def record(state: str, **extra: object) -> dict:
    return {"taskId": "t1", "model": TEXT_MODEL, "state": state, "param": "{}", **extra}


@respx.mock
async def test_submit_sends_the_contract_and_returns_the_task_id(kie: KieProvider) -> None:
    route = respx.post(f"{BASE}/api/v1/jobs/createTask").respond(
        json={"code": 200, "msg": "success", "data": {"taskId": "t1"}}
    )
    assert (await kie.submit(request(EDIT_MODEL, ("https://app.test/media/a.png",)))).task_id == "t1"
    sent = json.loads(route.calls[0].request.content)
    assert route.calls[0].request.headers["authorization"] == "Bearer key-1"
    assert sent == {
        "model": EDIT_MODEL,
        "callBackUrl": "https://app.test/cb",
        "input": {
            "prompt": "a fox",
            "output_format": "png",
            "aspect_ratio": "16:9",
            "image_size": "16:9",
            "image_urls": ["https://app.test/media/a.png"],
        },
    }


@pytest.mark.parametrize("documented", ["create_task_request_2025", "create_task_request_2026"])
@respx.mock
async def test_the_chosen_aspect_ratio_is_sent_under_every_documented_name(kie: KieProvider, documented: str) -> None:
    """Older docs read `image_size`, newer `aspect_ratio`: a service reading either sees the user's ratio."""
    example = load("kie", documented)
    route = respx.post(f"{BASE}/api/v1/jobs/createTask").respond(json=load("kie", "create_task_response"))
    await kie.submit(request())  # the user chose 16:9
    sent = json.loads(route.calls[0].request.content)
    assert set(example) <= set(sent)
    ratio_fields = [name for name, value in example["input"].items() if value == "16:9"]
    assert ratio_fields
    for name in ratio_fields:
        assert sent["input"][name] == "16:9", f"{name} does not carry the chosen ratio"
    for name in set(example["input"]) - {"prompt"}:
        assert name in sent["input"]


@pytest.mark.parametrize("code", sorted(ERRORS))
@pytest.mark.parametrize("in_http_status", [True, False])
@respx.mock
async def test_every_error_code_maps_to_a_readable_message(kie: KieProvider, code: int, in_http_status: bool) -> None:
    body = {"code": code, "msg": "details here", "data": None}
    respx.post(f"{BASE}/api/v1/jobs/createTask").respond(status_code=code if in_http_status else 200, json=body)
    with pytest.raises(ProviderError) as caught:
        await kie.submit(request())
    message, retryable = ERRORS[code]
    assert caught.value.message.startswith(message)
    assert caught.value.retryable is retryable
    assert caught.value.retryable is (code in (408, 429, 455, 500))


@respx.mock
async def test_408_no_upstream_result_reads_well_and_is_retried(kie: KieProvider) -> None:
    respx.get(f"{BASE}/api/v1/jobs/recordInfo").respond(json=load("kie", "record_info_timeout"))
    with pytest.raises(ProviderError) as caught:
        await kie.query(TaskRef("t1"))
    assert "no result from the model for over 10 minutes" in caught.value.message
    assert caught.value.retryable


@respx.mock
async def test_record_info_null_just_after_creation_is_retried_then_final() -> None:
    clock = Clock()
    respx.post(f"{BASE}/api/v1/jobs/createTask").respond(json=load("kie", "create_task_response"))
    respx.get(f"{BASE}/api/v1/jobs/recordInfo").respond(json=load("kie", "record_info_null"))
    async with httpx.AsyncClient() as http:
        kie = KieProvider(api_key="k", base_url=BASE, http=http, clock=clock)
        task = await kie.submit(request())
        clock.now += 5
        with pytest.raises(ProviderError) as early:
            await kie.query(task)
        assert early.value.retryable and "no record of the new task yet" in early.value.message
        clock.now += RECORD_GRACE_S
        with pytest.raises(ProviderError) as late:
            await kie.query(task)
    assert not late.value.retryable and "recordInfo is null" in late.value.message


@respx.mock
async def test_insufficient_credits_reads_as_such(kie: KieProvider) -> None:
    respx.post(f"{BASE}/api/v1/jobs/createTask").respond(json={"code": 402, "msg": "Credits insufficient"})
    with pytest.raises(ProviderError, match="insufficient credits"):
        await kie.submit(request())


@respx.mock
async def test_rate_limit_carries_retry_after(kie: KieProvider) -> None:
    respx.post(f"{BASE}/api/v1/jobs/createTask").respond(429, headers={"Retry-After": "7"}, json={"code": 429})
    with pytest.raises(ProviderError) as caught:
        await kie.submit(request())
    assert (caught.value.retryable, caught.value.retry_after_s) == (True, 7.0)


@respx.mock
async def test_malformed_replies_are_errors_not_crashes(kie: KieProvider) -> None:
    respx.post(f"{BASE}/api/v1/jobs/createTask").respond(200, text="<html>gateway</html>")
    with pytest.raises(ProviderError, match="server error"):
        await kie.submit(request())
    respx.post(f"{BASE}/api/v1/jobs/createTask").respond(json={"code": 200, "data": {}})
    with pytest.raises(ProviderError, match="without a task id"):
        await kie.submit(request())


@respx.mock
async def test_submit_accepts_either_task_id_spelling(kie: KieProvider) -> None:
    respx.post(f"{BASE}/api/v1/jobs/createTask").respond(json={"code": 200, "data": {"task_id": "t9"}})
    assert (await kie.submit(request())).task_id == "t9"


@pytest.mark.parametrize(
    ("data", "status", "urls", "error"),
    [
        (record("waiting"), JobStatus.SUBMITTED, (), None),
        (record("queuing"), JobStatus.SUBMITTED, (), None),
        (record("generating"), JobStatus.RUNNING, (), None),
        (
            record("success", resultJson=json.dumps({"resultUrls": ["https://cdn.test/1.png"]})),
            JobStatus.COMPLETED,
            ("https://cdn.test/1.png",),
            None,
        ),
        (record("success", resultJson="{not json"), JobStatus.FAILED, (), "unreadable resultJson"),
        (record("success", resultJson=json.dumps({"resultUrls": []})), JobStatus.FAILED, (), "without a result"),
        (record("fail", failCode="400", failMsg="nsfw"), JobStatus.FAILED, (), "KIE.ai generation failed: nsfw"),
    ],
)
@respx.mock
async def test_query_maps_states(kie: KieProvider, data: dict, status: JobStatus, urls: tuple, error: str | None):
    respx.get(f"{BASE}/api/v1/jobs/recordInfo", params={"taskId": "t1"}).respond(json={"code": 200, "data": data})
    update = await kie.query(TaskRef("t1"))
    assert (update.task_id, update.status, update.result_urls) == ("t1", status, urls)
    assert (error is None and update.error is None) or (error and error in (update.error or ""))


@respx.mock
async def test_query_of_unknown_task_or_missing_state(kie: KieProvider) -> None:
    respx.get(f"{BASE}/api/v1/jobs/recordInfo").respond(json={"code": 404, "msg": "not found"})
    with pytest.raises(ProviderError, match="404") as caught:
        await kie.query(TaskRef("nope"))
    assert not caught.value.retryable
    respx.get(f"{BASE}/api/v1/jobs/recordInfo").respond(json={"code": 200, "data": {"taskId": "t1"}})
    with pytest.raises(ProviderError, match="unreadable"):
        await kie.query(TaskRef("t1"))


def callback(data: dict, *, key: str = "hmac-1", ts: int | None = None, task_id: str = "t1"):
    headers = kie_headers(key, task_id, ts)
    return headers, json.dumps({"code": 200, "msg": "success", "data": data}).encode()


async def test_signed_callback_is_verified(kie: KieProvider) -> None:
    headers, body = callback(record("success", resultJson=json.dumps({"resultUrls": ["https://cdn.test/1.png"]})))
    update = await kie.parse_webhook(headers, body)
    assert (update.status, update.verified, update.result_urls) == (
        JobStatus.COMPLETED,
        True,
        ("https://cdn.test/1.png",),
    )
    # The signature does not cover resultJson: the app must ask recordInfo before using it.
    assert update.confirm_with_query


async def test_signed_callback_result_is_confirmed_with_record_info(kie_core: Core, kie_api: respx.MockRouter) -> None:
    """A validly signed callback whose resultJson was swapped: the app stores recordInfo's image, not it."""
    kie_core.registry.get("kie").hmac_key = "hmac-1"  # type: ignore[attr-defined]
    kie_api.post(CREATE).respond(json={"code": 200, "msg": "success", "data": {"taskId": "t1"}})
    genuine = load("kie", "record_info_success")
    genuine["data"].update(taskId="t1", resultJson=json.dumps({"resultUrls": [IMAGE_URL]}))
    kie_api.get(RECORD).respond(json=genuine)
    swapped = kie_api.get("https://attacker.test/x.png").respond(200, content=b"not ours")
    project = kie_core.canvas.ensure_default_project(kie_core.accounts.local_user().id)
    node = kie_core.canvas.add_node(project.id, NodeKind.TEXT_TO_IMAGE)
    kie_core.canvas.update_node(node.id, prompt="a fox", model=TEXT_MODEL)
    view = await kie_core.pipeline.generate(node.id)
    await kie_core.pipeline.drain()
    job = kie_core.jobs.get(view.id)
    body = load("kie", "callback_success")
    body["data"].update(taskId="t1", resultJson=json.dumps({"resultUrls": ["https://attacker.test/x.png"]}))
    outcome = await kie_core.webhooks.receive(
        "kie", job.id, job.callback_token, kie_headers("hmac-1", "t1"), json.dumps(body).encode()
    )
    assert outcome.status_code == 200, outcome.message
    assert kie_core.jobs.get(job.id).status == JobStatus.COMPLETED
    assert not swapped.called


async def test_a_burst_beyond_the_rate_limit_waits_in_queued_saying_why(
    kie_core: Core, kie_api: respx.MockRouter
) -> None:
    kie = kie_core.registry.get("kie")
    assert kie.submit_limit == SubmitLimit(20, 10, kie.submit_limit.account, kie.submit_limit.reason)  # documented
    kie.submit_limit = SubmitLimit(2, 3, "test-account", "KIE.ai takes 2 new tasks per 3 s")  # type: ignore[misc]
    create = kie_api.post(CREATE).respond(json={"code": 200, "msg": "success", "data": {"taskId": "t1"}})
    project = kie_core.canvas.ensure_default_project(kie_core.accounts.local_user().id)
    node = kie_core.canvas.add_node(project.id, NodeKind.TEXT_TO_IMAGE)
    kie_core.canvas.update_node(node.id, prompt="a fox", model=TEXT_MODEL)
    views = [await kie_core.pipeline.generate(node.id) for _ in range(3)]
    waiting = await eventually(
        lambda: [j for v in views if (j := kie_core.jobs.get(v.id)).progress],
        what="a job to say it waits for the rate limit",
        timeout_s=10,
    )
    assert len(waiting) == 1 and create.call_count <= 2  # the third never reached KIE.ai
    assert waiting[0].status == JobStatus.QUEUED
    assert waiting[0].progress == "waiting: KIE.ai takes 2 new tasks per 3 s"
    await kie_core.pipeline.drain()  # the window moves on and the third is submitted
    after = kie_core.jobs.get(waiting[0].id)
    assert (after.status, after.progress, create.call_count) == (JobStatus.SUBMITTED, "", 3)
    throttled = [v.id for v in views if "submit.throttled" in {s.step for s in kie_core.jobs.timeline(v.id).steps}]
    assert throttled == [after.id]


async def test_callback_with_snake_case_task_id(kie: KieProvider) -> None:
    data = {"task_id": "t1", "state": "generating"}
    headers, body = callback(data)
    assert (await kie.parse_webhook(headers, body)).status == JobStatus.RUNNING


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: ({**h, **kie_headers("wrong-key", "t1", int(h["X-Webhook-Timestamp"]))}, b),
        lambda h, b: ({k: v for k, v in h.items() if k != "X-Webhook-Signature"}, b),
        lambda h, b: ({}, b),
        lambda h, b: callback(record("generating"), ts=int(time.time()) - 600),
        lambda h, b: (h, json.dumps({"code": 200, "data": {**record("generating"), "taskId": "t2"}}).encode()),
    ],
    ids=["wrong key", "no signature", "no headers", "stale timestamp", "signature of another task"],
)
async def test_bad_signatures_are_rejected(kie: KieProvider, tamper) -> None:
    headers, body = tamper(*callback(record("generating")))
    with pytest.raises(WebhookRejected) as caught:
        await kie.parse_webhook(headers, body)
    assert caught.value.status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"[]",
        b'{"data": null}',
        b'{"data": {"state": "success"}}',
        b'{"data": {"taskId": "t1", "state": "exploded"}}',
    ],
)
async def test_malformed_callbacks_are_rejected(kie: KieProvider, body: bytes) -> None:
    headers, _ = callback(record("generating"))
    with pytest.raises(WebhookRejected):
        await kie.parse_webhook(headers, body)


async def test_unsigned_callback_is_only_a_hint_without_a_key() -> None:
    async with httpx.AsyncClient() as http:
        kie = KieProvider(api_key="k", base_url=BASE, http=http)
        _, body = callback(record("generating"))
        assert (await kie.parse_webhook({}, body)).verified is False


async def test_edit_without_public_url_says_why() -> None:
    async with httpx.AsyncClient() as http:
        kie = KieProvider(api_key="k", base_url=BASE, http=http, public_url=False)
        with pytest.raises(ProviderError, match="PUBLIC_BASE_URL"):
            await kie.submit(request(EDIT_MODEL, ("http://localhost:3000/media/a.png",)))


async def test_models_are_disabled_with_a_hint_without_a_key() -> None:
    async with httpx.AsyncClient() as http:
        kie = KieProvider(api_key="", base_url=BASE, http=http)
    assert {m.id: m.disabled_reason for m in kie.models} == {
        TEXT_MODEL: "set KIE_API_KEY to use KIE.ai",
        EDIT_MODEL: "set KIE_API_KEY to use KIE.ai",
    }
