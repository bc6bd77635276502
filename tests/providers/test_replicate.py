"""Replicate beyond the conformance suite: the documented request, statuses, errors, secret handling."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from core.contract import JobStatus, ProviderError, SubmitRequest, TaskProgress, TaskRef, WebhookRejected
from providers.replicate import EDIT_MODEL, TEXT_MODEL, ReplicateProvider, prediction_update
from tests.providers.fixtures import load
from tests.providers.harness import Clock
from tests.providers.signing import standard_webhook_headers

BASE = "https://replicate.test"
CREATE = f"{BASE}/v1/models/google/nano-banana/predictions"
SECRET_URL = f"{BASE}/v1/webhooks/default/secret"
SECRET = load("replicate", "default_secret")["key"]


@pytest.fixture
async def replicate():
    async with httpx.AsyncClient() as http:
        yield ReplicateProvider(api_token="r8_k", base_url=BASE, http=http)


def webhook(name: str = "prediction_succeeded", secret: str = SECRET, msg_id: str = "msg_1"):
    body = json.dumps(load("replicate", name)).encode()
    return standard_webhook_headers(secret, msg_id, body), body


@respx.mock
async def test_submit_sends_the_documented_request(replicate: ReplicateProvider) -> None:
    route = respx.post(CREATE).respond(201, json=load("replicate", "prediction_starting"))
    request = SubmitRequest("j", EDIT_MODEL, "night", "16:9", "https://app/cb", ("https://app/a.png",))
    task = await replicate.submit(request)
    sent = route.calls[0].request
    documented = load("replicate", "create_prediction_request")
    body = json.loads(sent.content)
    assert set(body) == set(documented)
    assert set(body["input"]) == set(documented["input"])
    assert body == {
        "input": {
            "prompt": "night",
            "aspect_ratio": "16:9",
            "output_format": "png",
            "image_input": ["https://app/a.png"],
        },
        "webhook": "https://app/cb",
        "webhook_events_filter": ["completed"],
    }
    assert sent.headers["authorization"] == "Bearer r8_k"
    assert "prefer" not in sent.headers  # no `Prefer: wait`: the answer comes back at once
    assert task == TaskRef("gm3qorzdhgbfurvjtvhg6dckhu")


@pytest.mark.parametrize("status", [201, 202])
@respx.mock
async def test_a_create_answered_201_or_the_documented_202_is_a_running_prediction(
    replicate: ReplicateProvider, status: int
) -> None:
    """A 202 failed the job ("Replicate answered HTTP 202") while the prediction ran on, billed."""
    respx.post(CREATE).respond(status, json={**load("replicate", "prediction_starting"), "id": "p-202"})
    assert await replicate.submit(SubmitRequest("j", TEXT_MODEL, "a fox", "1:1", "https://app/cb")) == TaskRef("p-202")


@respx.mock
async def test_text_to_image_sends_no_images_and_keeps_the_ratio(replicate: ReplicateProvider) -> None:
    route = respx.post(CREATE).respond(201, json=load("replicate", "prediction_starting"))
    await replicate.submit(SubmitRequest("j", TEXT_MODEL, "a fox", "9:16", "https://app/cb"))
    assert json.loads(route.calls[0].request.content)["input"] == {
        "prompt": "a fox",
        "aspect_ratio": "9:16",
        "output_format": "png",
    }


FLAGGED = (
    "Replicate generation failed: E005: The input or output was flagged as sensitive. "
    "Please try again with different inputs."
)


@pytest.mark.parametrize(
    ("fixture", "status", "urls", "error", "progress"),
    [
        ("prediction_starting", JobStatus.SUBMITTED, (), None, "starting"),
        ("prediction_processing", JobStatus.RUNNING, (), None, "Generating image with Gemini 2.5 Flash Image"),
        (
            "prediction_succeeded",
            JobStatus.COMPLETED,
            ("https://replicate.delivery/xezq/abc123/tmp7x1y2z3a.png",),
            None,
            "",
        ),
        ("prediction_failed", JobStatus.FAILED, (), FLAGGED, ""),
        ("prediction_canceled", JobStatus.CANCELLED, (), None, ""),
    ],
)
@respx.mock
async def test_query_maps_documented_predictions(
    replicate: ReplicateProvider, fixture: str, status: JobStatus, urls: tuple, error: str | None, progress: str
) -> None:
    respx.get(f"{BASE}/v1/predictions/p1").respond(json={**load("replicate", fixture), "id": "p1"})
    update = await replicate.query(TaskRef("p1"))
    assert (update.task_id, update.status, update.result_urls) == ("p1", status, urls)
    assert (update.error, update.progress) == (error, progress)


@respx.mock
async def test_output_as_a_list_and_aborted_predictions(replicate: ReplicateProvider) -> None:
    done = {**load("replicate", "prediction_succeeded"), "id": "p1", "output": ["https://r.test/a.png"]}
    respx.get(f"{BASE}/v1/predictions/p1").respond(json=done)
    assert (await replicate.query(TaskRef("p1"))).result_urls == ("https://r.test/a.png",)
    aborted = {**load("replicate", "prediction_starting"), "id": "p1", "status": "aborted"}
    respx.get(f"{BASE}/v1/predictions/p1").respond(json=aborted)
    update = await replicate.query(TaskRef("p1"))
    assert update.status == JobStatus.FAILED and "aborted" in (update.error or "")


@respx.mock
@pytest.mark.parametrize(
    ("status", "body", "words", "retryable"),
    [
        (401, {"detail": "You did not pass a valid authentication token", "status": 401}, "REPLICATE_API_TOKEN", False),
        (402, {"detail": "Insufficient credit", "status": 402}, "credit", False),
        (422, load("replicate", "error_422"), "Invalid type. Expected: string", False),
        (429, load("replicate", "error_429"), "rate limiting", True),
        (500, {"detail": "Internal server error"}, "server error", True),
    ],
)
async def test_errors_read_well(replicate: ReplicateProvider, status: int, body: dict, words: str, retryable: bool):
    respx.post(CREATE).respond(status, json=body, headers={"Retry-After": "3"})
    with pytest.raises(ProviderError) as caught:
        await replicate.submit(SubmitRequest("j", TEXT_MODEL, "x", "1:1", "https://app/cb"))
    assert words in caught.value.message
    assert caught.value.retryable is retryable
    if status == 429:
        assert caught.value.retry_after_s == 3.0


@respx.mock
async def test_cancel_uses_the_documented_endpoint(replicate: ReplicateProvider) -> None:
    route = respx.post(f"{BASE}/v1/predictions/p1/cancel").respond(json=load("replicate", "prediction_canceled"))
    await replicate.cancel(TaskRef("p1"))
    assert route.called and route.calls[0].request.headers["authorization"] == "Bearer r8_k"


@respx.mock
async def test_the_signing_secret_is_fetched_once_and_cached(replicate: ReplicateProvider) -> None:
    secret = respx.get(SECRET_URL).respond(json=load("replicate", "default_secret"))
    for n in range(3):
        update = await replicate.parse_webhook(*webhook(msg_id=f"msg_{n}"))
        assert update.status == JobStatus.COMPLETED and update.delivery_id == f"msg_{n}"
    assert secret.call_count == 1
    assert secret.calls[0].request.headers["authorization"] == "Bearer r8_k"


@respx.mock
async def test_a_rotated_secret_is_picked_up_on_a_miss() -> None:
    clock = Clock()
    new_secret = "whsec_" + "bmV3LXNlY3JldC1ieXRlcy0xMjM0NTY3OA=="
    respx.get(SECRET_URL).mock(
        side_effect=[httpx.Response(200, json={"key": SECRET}), httpx.Response(200, json={"key": new_secret})]
    )
    async with httpx.AsyncClient() as http:
        replicate = ReplicateProvider(api_token="r8_k", base_url=BASE, http=http, clock=clock)
        await replicate.parse_webhook(*webhook())
        clock.now += 120
        update = await replicate.parse_webhook(*webhook(secret=new_secret))
    assert update.status == JobStatus.COMPLETED


@respx.mock
async def test_a_configured_secret_is_used_without_asking_replicate() -> None:
    secret = respx.get(SECRET_URL).respond(json={"key": "whsec_b3RoZXI="})
    async with httpx.AsyncClient() as http:
        replicate = ReplicateProvider(api_token="r8_k", base_url=BASE, http=http, webhook_secret=SECRET)
        assert (await replicate.parse_webhook(*webhook())).status == JobStatus.COMPLETED
    assert not secret.called


@respx.mock
@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: ({**h, "webhook-timestamp": str(int(h["webhook-timestamp"]) - 600)}, b),
        lambda h, b: (h, b.replace(b"succeeded", b"failed")),
        lambda h, b: ({**h, "webhook-signature": "v1,not-base64!"}, b),
        lambda h, b: ({**h, "webhook-signature": "garbage"}, b),
        lambda h, b: ({k: v for k, v in h.items() if k != "webhook-id"}, b),
        lambda h, b: webhook(secret="whsec_d3Jvbmctc2VjcmV0"),
    ],
    ids=["stale", "body changed", "not base64", "no version", "missing header", "other secret"],
)
async def test_bad_signatures_are_rejected(replicate: ReplicateProvider, tamper) -> None:
    respx.get(SECRET_URL).respond(json=load("replicate", "default_secret"))
    with pytest.raises(WebhookRejected) as caught:
        await replicate.parse_webhook(*tamper(*webhook()))
    assert caught.value.status_code == 401


@respx.mock
async def test_unreachable_secret_endpoint_asks_replicate_to_retry(replicate: ReplicateProvider) -> None:
    respx.get(SECRET_URL).mock(side_effect=httpx.ConnectError("down"))
    with pytest.raises(WebhookRejected) as caught:
        await replicate.parse_webhook(*webhook())
    assert caught.value.status_code == 503


async def test_models_are_disabled_with_a_hint_without_a_token() -> None:
    async with httpx.AsyncClient() as http:
        replicate = ReplicateProvider(api_token="", base_url=BASE, http=http)
    assert {m.id: m.disabled_reason for m in replicate.models} == {
        TEXT_MODEL: "set REPLICATE_API_TOKEN to use Replicate",
        EDIT_MODEL: "set REPLICATE_API_TOKEN to use Replicate",
    }
    assert replicate.submit_limit is None


async def test_edit_without_public_url_says_why() -> None:
    async with httpx.AsyncClient() as http:
        replicate = ReplicateProvider(api_token="r8_k", base_url=BASE, http=http, public_url=False)
        with pytest.raises(ProviderError, match="PUBLIC_BASE_URL"):
            await replicate.submit(SubmitRequest("j", EDIT_MODEL, "x", "1:1", "https://app/cb", ("http://l/a.png",)))


def test_a_progress_bar_in_the_logs_becomes_the_percent() -> None:
    processing = load("replicate", "prediction_processing")
    assert prediction_update(processing).live == TaskProgress()  # logs without a bar: no fraction
    processing["logs"] += "  0%|          | 0/20 [00:00<?, ?it/s]\r 45%|████▌     | 9/20 [00:02<00:02,  4.50it/s]\n"
    update = prediction_update(processing)
    assert (update.status, update.live) == (JobStatus.RUNNING, TaskProgress(percent=45.0))
    assert update.progress == " 45%|████▌     | 9/20 [00:02<00:02,  4.50it/s]"  # the bar's latest state
