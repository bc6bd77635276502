"""Fal.ai specifics beyond the conformance suite: JWKS caching, signature edges, errors."""

from __future__ import annotations

import json

import httpx
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.contract import JobStatus, ProviderError, SubmitRequest, TaskProgress, TaskRef, WebhookRejected
from core.settings import Settings
from providers.fal import EDIT_MODEL, TEXT_MODEL, FalProvider
from tests.providers.fixtures import load
from tests.providers.harness import Clock
from tests.providers.harness_fal import jwk
from tests.providers.signing import fal_headers

QUEUE = "https://fal.test"
JWKS = "https://keys.test/jwks.json"
KEY = Ed25519PrivateKey.generate()


@pytest.fixture
async def fal() -> FalProvider:
    async with httpx.AsyncClient() as http:
        yield FalProvider(api_key="k", queue_url=QUEUE, jwks_url=JWKS, http=http)


def webhook(request_id: str = "r1", key: Ed25519PrivateKey = KEY) -> tuple[dict[str, str], bytes]:
    body = json.dumps({"request_id": request_id, "status": "OK", "payload": {"images": [{"url": "https://c/1.png"}]}})
    return fal_headers(key, request_id, body.encode()), body.encode()


@respx.mock
async def test_jwks_is_fetched_once_and_cached(fal: FalProvider) -> None:
    keys = respx.get(JWKS).respond(json={"keys": [jwk(KEY), {"kty": "RSA", "n": "x"}]})
    for _ in range(3):
        update = await fal.parse_webhook(*webhook())
        assert update.status == JobStatus.COMPLETED
    assert keys.call_count == 1


@respx.mock
async def test_jwks_is_refetched_after_a_day() -> None:
    clock = Clock()
    keys = respx.get(JWKS).respond(json={"keys": [jwk(KEY)]})
    _, body = webhook()
    async with httpx.AsyncClient() as http:
        fal = FalProvider(api_key="k", queue_url=QUEUE, jwks_url=JWKS, http=http, clock=clock)
        await fal.parse_webhook(fal_headers(KEY, "r1", body, timestamp=int(clock.now)), body)
        clock.now += 24 * 3600 + 1
        await fal.parse_webhook(fal_headers(KEY, "r1", body, timestamp=int(clock.now)), body)
    assert keys.call_count == 2


@respx.mock
async def test_rotated_key_is_picked_up_on_a_miss() -> None:
    clock = Clock()
    new_key = Ed25519PrivateKey.generate()
    respx.get(JWKS).mock(
        side_effect=[httpx.Response(200, json={"keys": [jwk(KEY)]}), httpx.Response(200, json={"keys": [jwk(new_key)]})]
    )
    _, body = webhook()
    async with httpx.AsyncClient() as http:
        fal = FalProvider(api_key="k", queue_url=QUEUE, jwks_url=JWKS, http=http, clock=clock)
        await fal.parse_webhook(fal_headers(KEY, "r1", body, timestamp=int(clock.now)), body)
        clock.now += 120
        update = await fal.parse_webhook(fal_headers(new_key, "r1", body, timestamp=int(clock.now)), body)
    assert update.status == JobStatus.COMPLETED


@respx.mock
@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: ({**h, "x-fal-webhook-timestamp": str(int(h["x-fal-webhook-timestamp"]) - 600)}, b),
        lambda h, b: (h, b.replace(b"1.png", b"2.png")),
        lambda h, b: ({**h, "x-fal-webhook-signature": "zz"}, b),
        lambda h, b: ({k: v for k, v in h.items() if k != "x-fal-webhook-user-id"}, b),
        lambda h, b: webhook(key=Ed25519PrivateKey.generate()),
    ],
    ids=["stale", "body changed", "not hex", "missing header", "other key"],
)
async def test_bad_signatures_are_rejected(fal: FalProvider, tamper) -> None:
    respx.get(JWKS).respond(json={"keys": [jwk(KEY)]})
    with pytest.raises(WebhookRejected) as caught:
        await fal.parse_webhook(*tamper(*webhook()))
    assert caught.value.status_code == 401


@respx.mock
async def test_body_must_name_the_signed_request(fal: FalProvider) -> None:
    respx.get(JWKS).respond(json={"keys": [jwk(KEY)]})
    body = json.dumps({"request_id": "someone-else", "status": "OK", "payload": {"images": []}}).encode()
    with pytest.raises(WebhookRejected, match="different requests"):
        await fal.parse_webhook(fal_headers(KEY, "r1", body), body)


@respx.mock
async def test_unreachable_jwks_asks_fal_to_retry(fal: FalProvider) -> None:
    respx.get(JWKS).mock(side_effect=httpx.ConnectError("down"))
    with pytest.raises(WebhookRejected) as caught:
        await fal.parse_webhook(*webhook())
    assert caught.value.status_code == 503


@respx.mock
async def test_submit_uses_the_queue_contract(fal: FalProvider) -> None:
    route = respx.post(f"{QUEUE}/{EDIT_MODEL}").respond(
        json={
            "request_id": "r1",
            "response_url": f"{QUEUE}/fal-ai/nano-banana/requests/r1",
            "status_url": f"{QUEUE}/fal-ai/nano-banana/requests/r1/status",
            "cancel_url": f"{QUEUE}/fal-ai/nano-banana/requests/r1/cancel",
        }
    )
    task = await fal.submit(SubmitRequest("j", EDIT_MODEL, "night", "auto", "https://app/cb", ("https://app/a.png",)))
    sent = route.calls[0].request
    assert sent.headers["authorization"] == "Key k"
    assert sent.url.params["fal_webhook"] == "https://app/cb"
    assert json.loads(sent.content) == {
        "prompt": "night",
        "num_images": 1,
        "output_format": "png",
        "aspect_ratio": "auto",
        "image_urls": ["https://app/a.png"],
    }
    assert task.handle["status_url"].endswith("/requests/r1/status")


@respx.mock
@pytest.mark.parametrize(
    ("status", "words", "retryable"),
    [
        (401, "rejected FAL_KEY", False),
        (403, "rejected FAL_KEY", False),
        (422, "prompt too long", False),
        (429, "rate limiting", True),
        (500, "server error", True),
        (503, "server error", True),
    ],
)
async def test_errors_map_to_readable_messages(fal: FalProvider, status: int, words: str, retryable: bool) -> None:
    respx.post(f"{QUEUE}/{TEXT_MODEL}").respond(status, json={"detail": [{"msg": "prompt too long"}]})
    with pytest.raises(ProviderError) as caught:
        await fal.submit(SubmitRequest("j", TEXT_MODEL, "x", "1:1", "https://app/cb"))
    assert words in caught.value.message
    assert caught.value.retryable is retryable


@respx.mock
async def test_queue_position_and_logs_become_progress(fal: FalProvider) -> None:
    handle = {"status_url": f"{QUEUE}/s", "response_url": f"{QUEUE}/r", "cancel_url": f"{QUEUE}/c"}
    respx.get(f"{QUEUE}/s").mock(
        side_effect=[
            httpx.Response(202, json={"status": "IN_QUEUE", "queue_position": 2}),
            httpx.Response(202, json={"status": "IN_PROGRESS", "logs": [{"message": "a"}, {"message": "step 4/8"}]}),
            httpx.Response(202, json={"status": "IN_PROGRESS", "logs": [{"message": " 45%|████▌     | 9/20"}]}),
        ]
    )
    first = await fal.query(TaskRef("r1", handle))
    second = await fal.query(TaskRef("r1", handle))
    third = await fal.query(TaskRef("r1", handle))
    assert (first.status, first.progress) == (JobStatus.SUBMITTED, "position 3 in queue")
    assert first.live == TaskProgress(queue_position=3)  # Fal counts from 0 (next), the app from 1
    assert (second.status, second.progress, second.live) == (JobStatus.RUNNING, "step 4/8", TaskProgress())
    assert third.live == TaskProgress(percent=45.0)


def test_jwks_default_is_the_documented_host(monkeypatch: pytest.MonkeyPatch) -> None:
    documented = "https://rest.alpha.fal.ai/.well-known/jwks.json"  # docs.fal.ai "Verifying your webhook"
    monkeypatch.delenv("FAL_JWKS_URL", raising=False)
    assert Settings().fal_jwks_url == documented


def documented_webhook(name: str, request_id: str = "r1") -> dict:
    body = load("fal", name)
    body["request_id"] = request_id
    if body["gateway_request_id"] == "123e4567-e89b-12d3-a456-426614174000":
        body["gateway_request_id"] = request_id
    return body


@respx.mock
async def test_result_too_large_for_the_webhook_is_fetched_from_the_queue(fal: FalProvider) -> None:
    respx.get(JWKS).respond(json={"keys": [jwk(KEY)]})
    body = json.dumps(documented_webhook("webhook_payload_error")).encode()
    update = await fal.parse_webhook(fal_headers(KEY, "r1", body), body)
    assert (update.status, update.result_urls, update.confirm_with_query) == (JobStatus.COMPLETED, (), True)
    handle = {"status_url": f"{QUEUE}/s", "response_url": f"{QUEUE}/r", "cancel_url": f"{QUEUE}/c"}
    respx.get(f"{QUEUE}/s").respond(200, json=load("fal", "status_completed"))
    respx.get(f"{QUEUE}/r").respond(200, json=load("fal", "response"))
    confirmed = await fal.query(TaskRef("r1", handle))
    assert confirmed.status == JobStatus.COMPLETED
    assert confirmed.result_urls == ("https://v3.fal.media/files/penguin/nano-banana-output.png",)


@respx.mock
async def test_error_webhook_shows_the_payload_detail(fal: FalProvider) -> None:
    respx.get(JWKS).respond(json={"keys": [jwk(KEY)]})
    body = json.dumps(documented_webhook("webhook_error")).encode()
    update = await fal.parse_webhook(fal_headers(KEY, "r1", body), body)
    assert update.status == JobStatus.FAILED
    assert update.error == "Fal.ai generation failed: field required"


@respx.mock
@pytest.mark.parametrize("signed_id", ["r1", "9f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b"], ids=["queue id", "gateway id"])
async def test_a_retried_request_is_accepted_whichever_id_the_header_carries(fal: FalProvider, signed_id: str) -> None:
    respx.get(JWKS).respond(json={"keys": [jwk(KEY)]})
    body = json.dumps(documented_webhook("webhook_retried")).encode()
    update = await fal.parse_webhook(fal_headers(KEY, signed_id, body), body)
    assert (update.task_id, update.status) == ("r1", JobStatus.COMPLETED)


@respx.mock
async def test_a_failure_on_the_status_endpoint_reads_well(fal: FalProvider) -> None:
    handle = {"status_url": f"{QUEUE}/s", "response_url": f"{QUEUE}/r", "cancel_url": f"{QUEUE}/c"}
    respx.get(f"{QUEUE}/s").respond(200, json=load("fal", "status_completed_error"))
    update = await fal.query(TaskRef("r1", handle))
    assert update.status == JobStatus.FAILED
    assert update.error == (
        "Fal.ai generation failed: The prompt was flagged by the content checker (content_policy_violation)"
    )
