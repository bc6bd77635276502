"""The one way a test waits, in the unit suite (async) and the end-to-end suite (sync).

A test never sleeps a fixed time hoping something happened meanwhile: that is slow when
the machine is fast and flaky when it is slow. It polls the thing itself (a row, a log
line, an HTTP answer) until a condition holds, with a deadline; a wait that runs out
fails with what it last saw, so a hang reads as a clear assertion, not a bare timeout.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from core.contract import JobStatus
from core.root import Core
from models.tables import Job

T = TypeVar("T")

TERMINAL = tuple(status for status in JobStatus if status.is_terminal)


class _Wait:
    """What a wait is for, when it gives up, and what it saw last (for the failure)."""

    def __init__(self, what: str, timeout_s: float) -> None:
        self.what = what
        self.timeout_s = timeout_s
        self.ends = time.monotonic() + timeout_s
        self.last: object = "nothing yet"

    def holds(self, value: T, until: Callable[[T], object]) -> bool:
        self.last = value
        if until(value):
            return True
        if time.monotonic() >= self.ends:
            raise self.failure()
        return False

    def failure(self) -> AssertionError:
        return AssertionError(f"waited {self.timeout_s:g} s for {self.what}; last seen: {self.last!r}")


async def eventually(
    probe: Callable[[], T | Awaitable[T]],
    until: Callable[[T], object] = bool,
    *,
    what: str,
    timeout_s: float = 5.0,
    interval_s: float = 0.01,
) -> T:
    """Call `probe` (sync or async) until `until(value)` holds; returns that value.

    The deadline also bounds a probe that blocks (an `asyncio.Queue.get`, say).
    """
    wait = _Wait(what, timeout_s)
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                value: Any = probe()
                if inspect.isawaitable(value):
                    value = await value
                if wait.holds(value, until):
                    return value
                await asyncio.sleep(interval_s)
    except TimeoutError:
        raise wait.failure() from None


def wait_until(
    probe: Callable[[], T],
    until: Callable[[T], object] = bool,
    *,
    what: str,
    timeout_s: float = 120.0,
    interval_s: float = 0.25,
) -> T:
    """The same for the end-to-end suite: the app and the fakes are other processes."""
    wait = _Wait(what, timeout_s)
    while not wait.holds(value := probe(), until):
        time.sleep(interval_s)
    return value


async def job_reaches(core: Core, job_id: str, *statuses: JobStatus, timeout_s: float = 5.0) -> Job:
    """The job, once its status is one of `statuses`."""
    return await eventually(
        lambda: core.jobs.get(job_id),
        lambda job: job.status in statuses,
        what=f"job {job_id} to be {' or '.join(s.value for s in statuses)}",
        timeout_s=timeout_s,
    )
