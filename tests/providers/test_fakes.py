"""The e2e fakes behave as the providers document, not as our provider modules expect."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
import respx

from e2e.fakes import delivery
from e2e.fakes.fal_server import FakeFal, QueuedRequest
from e2e.fakes.kie_server import FakeKie
from tests.providers.fixtures import load
from tests.wait import eventually

APP = "https://app.test/api/webhooks/x"


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """The pauses a delivery takes between tries, recorded instead of slept."""
    taken: list[float] = []

    async def no_wait(seconds: float) -> None:
        if seconds:
            taken.append(seconds)

    monkeypatch.setattr(delivery.asyncio, "sleep", no_wait)
    yield taken


@respx.mock
async def test_kie_fake_retries_a_callback_only_as_documented(pauses: list[float]) -> None:
    """docs.kie.ai: callbacks time out after 15 s and are retried only a few times."""
    app = respx.post(APP).respond(500)
    fake = FakeKie(api_key="k", hmac_key="h", base_url="http://fake")
    record = load("kie", "record_info_success")["data"]
    async with asyncio.timeout(5):
        await fake.deliver(APP, record)
    assert 2 <= app.call_count <= 3
    assert sum(pauses) < 60
    assert app.calls[0].request.extensions["timeout"]["read"] == 15.0


@respx.mock
async def test_fal_fake_retries_a_webhook_ten_times_over_two_hours(pauses: list[float]) -> None:
    """docs.fal.ai: "it will retry 10 times in the span of 2 hours"."""
    app = respx.post(APP).respond(503)
    fake = FakeFal(api_key="k", base_url="http://fake")
    item = QueuedRequest("r1", "fal-ai/nano-banana", {"prompt": "x"}, APP, "COMPLETED", result=load("fal", "response"))
    async with asyncio.timeout(5):
        await fake.deliver(item)
    assert app.call_count == 10
    assert 1.5 * 3600 <= sum(pauses) <= 2 * 3600 + 300


@respx.mock
async def test_fal_fake_stops_retrying_once_delivered(pauses: list[float]) -> None:
    app = respx.post(APP).mock(side_effect=[httpx.Response(502), httpx.Response(200)])
    fake = FakeFal(api_key="k", base_url="http://fake")
    item = QueuedRequest("r1", "fal-ai/nano-banana", {"prompt": "x"}, APP, "COMPLETED", result=load("fal", "response"))
    await fake.deliver(item)
    assert app.call_count == 2 and len(pauses) == 1


async def test_fal_fake_reports_a_failure_like_the_status_endpoint() -> None:
    """A failed request is COMPLETED with `error` and `error_type`, as the real status endpoint says."""
    fake = FakeFal(api_key="k", base_url="http://fake")
    fake.config.queue_s = fake.config.delay_s = 0
    fake.config.fail_generation = True
    auth = {"Authorization": "Key k"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake.app()), base_url="http://fake") as http:
        submitted = (await http.post("/fal-ai/nano-banana", json={"prompt": "x"}, headers=auth)).json()
        status_path = submitted["status_url"].removeprefix("http://fake")

        async def status_now() -> dict:
            return (await http.get(status_path, headers=auth)).json()

        status = await eventually(status_now, lambda s: s["status"] == "COMPLETED", what="the request to complete")
    assert status["error"] and status["error_type"]
    assert set(status) <= set(load("fal", "status_completed_error"))
    assert set(submitted) == set(load("fal", "submit_response"))
