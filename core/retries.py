"""Trying again what may work later: one backoff policy and one `Retry-After` parser.

The waiting is stamina's (exponential backoff with random jitter, on top of tenacity).
Jitter matters because failures come in crowds: the jobs a provider refused with 429
together, or every worker whose LISTEN connection dropped when PostgreSQL restarted,
would otherwise all come back in the same instant and be refused again.
"""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ParamSpec, TypeVar

import psycopg
import stamina
from sqlalchemy.exc import OperationalError
from stamina.instrumentation import set_on_retry_hooks

from core.contract import ProviderError

#: The longest wait a server's `Retry-After` can impose: a provider asking for an hour
#: would otherwise park a job (and its worker's claim) for that long.
MAX_RETRY_AFTER_S = 300.0

#: Every caller logs its own failures, with its job id, through the `canvas` loggers whose
#: filter scrubs secrets; stamina's default hook would log each retry again, unfiltered.
set_on_retry_hooks(())

#: stamina's `on`: exception types to retry, or a hook returning False (give up), True
#: (back off) or the seconds to wait instead.
RetryOn = type[Exception] | tuple[type[Exception], ...] | Callable[[Exception], bool | float]


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: the n-th wait is `base_s * 2**(n-1)` plus up to
    `base_s` at random, at most `cap_s`; `attempts=None` tries until it works, or for `for_s`."""

    attempts: int | None
    base_s: float
    cap_s: float = 30.0
    #: Stop trying once this long has passed since the first try (None: attempts alone bound it).
    for_s: float | None = None

    def attempts_on(self, on: RetryOn) -> AsyncIterable[stamina.Attempt]:
        """`async for attempt in policy.attempts_on(...): with attempt: ...`; the last failure propagates."""
        return self._context(on)

    def attempts_in_thread(self, on: RetryOn) -> Iterable[stamina.Attempt]:
        """`attempts_on` for blocking code: `for attempt in ...` (it sleeps between tries)."""
        return self._context(on)

    def _context(self, on: RetryOn) -> Any:  # stamina's iterator serves `for` and `async for` alike
        return stamina.retry_context(
            on=on,
            attempts=self.attempts,
            timeout=self.for_s,  # a Retry-After may legitimately take minutes
            wait_initial=self.base_s,
            wait_max=self.cap_s,
            wait_jitter=self.base_s,
        )

    def backoff_s(self, attempt: int) -> float:
        """The wait after the `attempt`-th failed try, as stamina computes it for `attempts_on`."""
        return min(self.cap_s, self.base_s * 2 ** (attempt - 1) + random.uniform(0, self.base_s))

    def next_try_in(self, exc: Exception, attempt: int, failing_for_s: float) -> float | None:
        """For work retried later rather than in a loop (a scheduled submission): the seconds
        until the next try after the `attempt`-th failed one, or None to give up.

        Only what the provider says may work later is tried again, and not before its
        `Retry-After` (plus jitter, since it tells every client the same); never past `for_s`
        after the first failure (`failing_for_s` ago).
        """
        if not isinstance(exc, ProviderError) or not exc.retryable:
            return None
        wait_s = self.backoff_s(attempt)
        if exc.retry_after_s is not None:
            wait_s = exc.retry_after_s + random.uniform(0, self.base_s)
        if self.for_s is not None and failing_for_s + wait_s > self.for_s:
            return None
        if self.attempts is not None and attempt >= self.attempts:
            return None
        return wait_s


def is_deadlock(exc: Exception) -> bool:
    """PostgreSQL broke a deadlock by aborting this transaction: it rolled back whole, and
    running it again works (the other one has committed meanwhile)."""
    return isinstance(exc, OperationalError) and isinstance(exc.orig, psycopg.errors.DeadlockDetected)


#: A few quick tries: a deadlock victim waits only for the other transaction to commit.
DEADLOCK_RETRY = RetryPolicy(attempts=5, base_s=0.02, cap_s=0.5)


def is_database_failure(exc: Exception) -> bool:
    """The database refused or dropped this transaction (restarting, unreachable, a deadlock):
    it rolled back whole, and the same call may work in a moment."""
    return isinstance(exc, OperationalError)


#: Writing down what cannot be asked again (the task a provider accepted: a second submit
#: would run and bill the job twice) is tried every 2 s at most for about five minutes,
#: past any restart of the database.
RECORD_RETRY = RetryPolicy(attempts=150, base_s=0.25, cap_s=2.0)


P = ParamSpec("P")
T = TypeVar("T")


def again_on_deadlock(call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run `call` (its transactions) again when PostgreSQL picked one as a deadlock's victim.

    For a user's action: a click must not be lost because another worker's transaction
    crossed it. Only for calls whose committed part is safe to repeat (one transaction, or
    idempotent ones, such as Generate with its client request id).
    """
    for attempt in DEADLOCK_RETRY.attempts_in_thread(is_deadlock):
        with attempt:
            return call(*args, **kwargs)
    raise AssertionError("unreachable: the last attempt raises")


async def again_on_deadlock_async(call: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
    """`again_on_deadlock` for a coroutine function (the pipeline's calls)."""
    async for attempt in DEADLOCK_RETRY.attempts_on(is_deadlock):
        with attempt:
            return await call(*args, **kwargs)
    raise AssertionError("unreachable: the last attempt raises")


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delay-seconds or an HTTP-date),
    at most `MAX_RETRY_AFTER_S`; None when absent or unreadable, so the backoff decides."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000" parses naive; HTTP-dates are GMT
            when = when.replace(tzinfo=UTC)
        seconds = max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER_S)
