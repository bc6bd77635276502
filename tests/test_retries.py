"""Retries: one backoff with jitter, Retry-After as the least wait, one parser for every provider."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import psycopg
import pytest
import respx
from sqlalchemy.exc import OperationalError

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


#: The submit policy's shape: 1 s doubling to at most 30 s, for ten minutes after the first failure.
SUBMIT = RetryPolicy(attempts=None, base_s=1.0, cap_s=30.0, for_s=600.0)
BUSY = ProviderError("busy", retryable=True)


def test_backoff_doubles_up_to_its_cap_with_random_jitter_on_top() -> None:
    firsts = [SUBMIT.next_try_in(BUSY, 1, 0.0) for _ in range(20)]
    seconds = [SUBMIT.next_try_in(BUSY, 2, 1.0) for _ in range(20)]
    assert all(w is not None and 1.0 <= w <= 2.0 for w in firsts)
    assert all(w is not None and 2.0 <= w <= 3.0 for w in seconds)
    assert len(set(firsts)) > 1 and len(set(seconds)) > 1  # not lockstep
    assert SUBMIT.next_try_in(BUSY, 12, 60.0) == 30.0


def test_retry_after_is_the_least_wait_and_jittered_too() -> None:
    waits = [SUBMIT.next_try_in(ProviderError("429", retryable=True, retry_after_s=42.0), 1, 0.0) for _ in range(8)]
    assert all(w is not None and 42.0 <= w <= 43.0 for w in waits) and len(set(waits)) > 1


def test_a_refusal_is_not_retried_nor_anything_past_the_duration() -> None:
    assert SUBMIT.next_try_in(ProviderError("no credits", retryable=False), 1, 0.0) is None
    assert SUBMIT.next_try_in(httpx.ConnectError("refused"), 1, 0.0) is None  # only ProviderErrors say
    assert SUBMIT.next_try_in(BUSY, 20, 590.0) is None  # its next try would come after the ten minutes
    assert SUBMIT.next_try_in(BUSY, 20, 560.0) == 30.0
    late = ProviderError("429", retryable=True, retry_after_s=300.0)
    assert SUBMIT.next_try_in(late, 3, 400.0) is None


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
