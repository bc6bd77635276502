"""Fuzzed webhooks: a parser answers with a TaskUpdate or WebhookRejected, never anything else."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.contract import Provider, TaskUpdate, WebhookRejected
from core.db import Database
from providers.fal import FalProvider
from providers.kie import KieProvider
from providers.local import LocalProvider
from providers.replicate import ReplicateProvider
from tests.providers.harness_fal import jwk
from tests.providers.signing import fal_headers, kie_headers, local_headers, standard_webhook_headers

JWKS = "https://keys.test/jwks.json"
FAL_KEY = Ed25519PrivateKey.generate()
REPLICATE_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=15,
)
header_names = st.sampled_from(
    [
        "x-webhook-timestamp",
        "x-webhook-signature",
        "x-local-timestamp",
        "x-local-signature",
        "x-fal-webhook-request-id",
        "x-fal-webhook-user-id",
        "x-fal-webhook-timestamp",
        "x-fal-webhook-signature",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    ]
)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parse(provider: Provider, headers: dict[str, str], body: bytes) -> TaskUpdate | None:
    """Parse under a JWKS mock; None when the webhook was rejected (the only allowed failure)."""

    async def run() -> TaskUpdate | None:
        with respx.mock:
            respx.get(JWKS).respond(json={"keys": [jwk(FAL_KEY)]})
            try:
                return await provider.parse_webhook(headers, body)
            except WebhookRejected:
                return None

    return asyncio.run(run())


@pytest.fixture(scope="module")
def providers() -> Iterator[list[Provider]]:
    """Every parser, built once for all examples (a module fixture: hypothesis reruns the test, not it)."""
    http, db = httpx.AsyncClient(), Database("sqlite://")
    yield [
        LocalProvider(db=db, own_url="http://app", http=http, secret="s3cret"),
        KieProvider(api_key="k", base_url="https://kie.test", http=http, hmac_key="h"),
        KieProvider(api_key="k", base_url="https://kie.test", http=http),
        FalProvider(api_key="k", queue_url="https://fal.test", jwks_url=JWKS, http=http),
        ReplicateProvider(api_token="r", base_url="https://replicate.test", http=http, webhook_secret=REPLICATE_SECRET),
    ]
    asyncio.run(http.aclose())
    db.engine.dispose()


@FUZZ
@given(body=st.binary(max_size=600), headers=st.dictionaries(header_names, st.text(max_size=40), max_size=8))
def test_arbitrary_bytes_and_headers(providers: list[Provider], body: bytes, headers: dict[str, str]) -> None:
    for provider in providers:
        parse(provider, headers, body)


@FUZZ
@given(
    data=st.dictionaries(
        st.sampled_from(["taskId", "task_id", "state", "resultJson", "failMsg", "failCode"]), json_values, max_size=6
    ),
    state=st.sampled_from(["waiting", "queuing", "generating", "success", "fail", "other"]),
)
def test_correctly_signed_kie_records_with_fuzzed_fields(
    providers: list[Provider], data: dict[str, Any], state: str
) -> None:
    data.setdefault("state", state)
    task_id = data.get("taskId") or data.get("task_id")
    headers = {"x-webhook-timestamp": str(int(time.time()))}
    if isinstance(task_id, str):
        try:
            headers = {k.lower(): v for k, v in kie_headers("h", task_id).items()}
        except UnicodeEncodeError:
            return  # not a task id anyone could sign
    update = parse(providers[1], headers, json.dumps({"code": 200, "data": data}).encode())
    if update is not None:
        assert update.task_id == task_id and update.verified


@FUZZ
@given(payload=json_values, status=st.sampled_from(["OK", "ERROR", "WHATEVER"]), request_id=st.text(min_size=1))
def test_correctly_signed_fal_webhooks_with_fuzzed_payloads(
    providers: list[Provider], payload: Any, status: str, request_id: str
) -> None:
    body = json.dumps({"request_id": request_id, "status": status, "payload": payload}).encode()
    try:
        headers = fal_headers(FAL_KEY, request_id, body)
    except UnicodeEncodeError:
        return  # not a header value anyone could send
    update = parse(providers[3], headers, body)
    if update is not None:
        assert update.task_id == request_id and update.status.is_terminal


@FUZZ
@given(payload=st.dictionaries(st.sampled_from(["task_id", "status", "result_urls", "error"]), json_values))
def test_correctly_signed_local_callbacks_with_fuzzed_fields(
    providers: list[Provider], payload: dict[str, Any]
) -> None:
    try:
        headers = local_headers("s3cret", str(payload.get("task_id", "")))
    except UnicodeEncodeError:
        return  # not a task id anyone could sign
    parse(providers[0], headers, json.dumps(payload).encode())


@FUZZ
@given(prediction=st.dictionaries(st.sampled_from(["id", "status", "output", "error", "logs"]), json_values))
def test_correctly_signed_replicate_webhooks_with_fuzzed_predictions(
    providers: list[Provider], prediction: dict[str, Any]
) -> None:
    body = json.dumps(prediction).encode()
    update = parse(providers[4], standard_webhook_headers(REPLICATE_SECRET, "msg_1", body), body)
    if update is not None:
        assert update.task_id == prediction["id"] and update.delivery_id == "msg_1"
