"""Retries: one backoff with jitter, Retry-After as the least wait, one parser for every provider."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import psycopg
import pytest
import respx
from sqlalchemy.exc import OperationalError
from stamina.instrumentation import RetryDetails, set_on_retry_hooks

from core.contract import ProviderError, SubmitRequest
from core.retries import (
    MAX_RETRY_AFTER_S,
    RetryPolicy,
    again_on_deadlock,
    again_on_deadlock_async,
    parse_retry_after,
)
from providers.fal import FalProvider
from providers.kie import KieProvider

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def http_date(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 2.5 ", 2.5),
        ("0", 0.0),
        (http_date(NOW + timedelta(seconds=90)), 90.0),
        ("Fri, 02 Jan 2026 03:05:35 -0000", 90.0),  # a zone-less date is GMT
        (http_date(NOW - timedelta(minutes=5)), 0.0),  # already past: go now
        ("3600", MAX_RETRY_AFTER_S),
        (http_date(NOW + timedelta(hours=2)), MAX_RETRY_AFTER_S),
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("nan", None),
        ("inf", None),
        ("Fri, 99 Foo 2026", None),
    ],
)
def test_retry_after_reads_seconds_or_an_http_date_and_is_capped(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


@pytest.fixture
def waits() -> Iterator[list[float]]:
    """The waits stamina schedules, as it computed them (jitter included)."""
    scheduled: list[float] = []

    def record(details: RetryDetails) -> None:
        scheduled.append(details.wait_for)

    set_on_retry_hooks([record])
    yield scheduled
    set_on_retry_hooks(())


async def fail_then_succeed(policy: RetryPolicy, errors: list[Exception]) -> int:
    """Run one retried call that raises `errors` in turn; returns how many attempts it took."""
    pending = list(errors)
    tries = 0
    async for attempt in policy.attempts_on(policy.provider_wait):
        with attempt:
            tries += 1
            if pending:
                raise pending.pop(0)
    return tries


async def test_backoff_doubles_with_random_jitter_on_top(waits: list[float]) -> None:
    policy = RetryPolicy(attempts=3, base_s=0.01)
    for _ in range(6):
        assert await fail_then_succeed(policy, [ProviderError("busy", retryable=True)] * 2) == 3
    firsts, seconds = waits[0::2], waits[1::2]
    assert all(0.01 <= w <= 0.02 for w in firsts) and all(0.02 <= w <= 0.03 for w in seconds)
    assert len(set(firsts)) > 1 and len(set(seconds)) > 1  # not lockstep


async def test_retry_after_is_the_least_wait_and_jittered_too(waits: list[float]) -> None:
    policy = RetryPolicy(attempts=2, base_s=0.01)
    for _ in range(4):
        await fail_then_succeed(policy, [ProviderError("429", retryable=True, retry_after_s=0.05)])
    assert all(0.05 <= w <= 0.06 for w in waits) and len(set(waits)) > 1


async def test_a_refusal_is_not_retried_and_the_last_failure_propagates(waits: list[float]) -> None:
    policy = RetryPolicy(attempts=3, base_s=0.01)
    with pytest.raises(ProviderError, match="no credits"):
        await fail_then_succeed(policy, [ProviderError("no credits", retryable=False)])
    with pytest.raises(ProviderError, match="still down"):
        await fail_then_succeed(policy, [ProviderError("still down", retryable=True)] * 3)
    with pytest.raises(httpx.ConnectError):  # only ProviderErrors say whether a retry may help
        await fail_then_succeed(policy, [httpx.ConnectError("refused")])
    assert len(waits) == 2  # the two waits between the three tries of "still down"


def request(model: str) -> SubmitRequest:
    return SubmitRequest(
        job_id="j1", model=model, prompt="a fox", aspect_ratio="1:1", callback_url="https://app.test/cb"
    )


@pytest.mark.parametrize("provider_name", ["kie", "fal"])
@respx.mock
async def test_every_provider_reads_retry_after_with_the_one_parser(provider_name: str) -> None:
    header = {"Retry-After": http_date(datetime.now(UTC) + timedelta(seconds=120))}
    async with httpx.AsyncClient() as http:
        if provider_name == "kie":
            provider: KieProvider | FalProvider = KieProvider(api_key="k", base_url="https://kie.test", http=http)
            respx.post("https://kie.test/api/v1/jobs/createTask").respond(429, headers=header, json={"code": 429})
            model = "google/nano-banana"
        else:
            provider = FalProvider(
                api_key="k", queue_url="https://fal.test", jwks_url="https://fal.test/jwks", http=http
            )
            respx.post("https://fal.test/fal-ai/nano-banana").respond(429, headers=header, json={"detail": "slow down"})
            model = "fal-ai/nano-banana"
        with pytest.raises(ProviderError) as caught:
            await provider.submit(request(model))
    assert caught.value.retryable
    assert caught.value.retry_after_s is not None and 110 <= caught.value.retry_after_s <= 120


def _deadlock() -> OperationalError:
    return OperationalError("UPDATE project ...", {}, psycopg.errors.DeadlockDetected("deadlock detected"))


def test_a_deadlock_victim_runs_again_and_other_errors_do_not() -> None:
    calls: list[int] = []

    def crossed_once() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise _deadlock()
        return "done"

    assert again_on_deadlock(crossed_once) == "done" and len(calls) == 2

    def locked_out() -> None:
        raise OperationalError("SELECT 1", {}, psycopg.errors.LockNotAvailable("not a deadlock"))

    with pytest.raises(OperationalError):
        again_on_deadlock(locked_out)


async def test_a_deadlock_victim_coroutine_runs_again() -> None:
    calls: list[int] = []

    async def crossed_once() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise _deadlock()
        return "done"

    assert await again_on_deadlock_async(crossed_once) == "done" and len(calls) == 2
