"""KIE.ai against respx mocks of its public API."""

from __future__ import annotations

import json
import time

import httpx
import pytest
import respx

from core.contract import JobStatus, ProviderError, SubmitRequest, TaskRef, WebhookRejected
from providers.kie import EDIT_MODEL, ERRORS, TEXT_MODEL, KieProvider, sign

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
    assert await kie.submit(request(EDIT_MODEL, ("https://app.test/media/a.png",))) == TaskRef("t1")
    sent = json.loads(route.calls[0].request.content)
    assert route.calls[0].request.headers["authorization"] == "Bearer key-1"
    assert sent == {
        "model": EDIT_MODEL,
        "callBackUrl": "https://app.test/cb",
        "input": {
            "prompt": "a fox",
            "output_format": "png",
            "aspect_ratio": "16:9",
            "image_urls": ["https://app.test/media/a.png"],
        },
    }


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
    assert caught.value.retryable is (code in (429, 455, 500))


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
    assert await kie.submit(request()) == TaskRef("t9")


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
    stamp = str(ts if ts is not None else int(time.time()))
    headers = {"x-webhook-timestamp": stamp, "x-webhook-signature": sign(key, task_id, stamp)}
    return headers, json.dumps({"code": 200, "msg": "success", "data": data}).encode()


async def test_signed_callback_is_verified(kie: KieProvider) -> None:
    headers, body = callback(record("success", resultJson=json.dumps({"resultUrls": ["https://cdn.test/1.png"]})))
    update = await kie.parse_webhook(headers, body)
    assert (update.status, update.verified, update.result_urls) == (
        JobStatus.COMPLETED,
        True,
        ("https://cdn.test/1.png",),
    )


async def test_callback_with_snake_case_task_id(kie: KieProvider) -> None:
    data = {"task_id": "t1", "state": "generating"}
    headers, body = callback(data)
    assert (await kie.parse_webhook(headers, body)).status == JobStatus.RUNNING


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: ({**h, "x-webhook-signature": sign("wrong-key", "t1", h["x-webhook-timestamp"])}, b),
        lambda h, b: ({k: v for k, v in h.items() if k != "x-webhook-signature"}, b),
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
