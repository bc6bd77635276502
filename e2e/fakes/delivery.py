"""How the fake providers call back: each provider's documented retry schedule, re-signed per attempt.

KIE.ai: a few tries with a 15 s timeout each (docs.kie.ai callbacks). Fal.ai: 10 tries
over 2 hours (docs.fal.ai webhooks, "Retry policy"). Replicate: terminal events retried
with exponential backoff for about a minute (replicate.com/docs webhooks). Any answer
outside 2xx, a timeout or a refused connection counts as a failed try.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class RetrySchedule:
    #: Pause before each retry; the number of tries is one more than this.
    pauses_s: tuple[float, ...]
    timeout_s: float

    @property
    def attempts(self) -> int:
        return len(self.pauses_s) + 1


KIE_CALLBACKS = RetrySchedule(pauses_s=(5.0, 30.0), timeout_s=15.0)
FAL_WEBHOOKS = RetrySchedule(pauses_s=tuple(14.2 * 2**n for n in range(9)), timeout_s=15.0)
REPLICATE_WEBHOOKS = RetrySchedule(pauses_s=(1.0, 2.0, 4.0, 8.0, 16.0, 29.0), timeout_s=15.0)


def schedule(documented: RetrySchedule, pauses_s: Sequence[float] | None) -> RetrySchedule:
    """The documented schedule, or a test's own pauses (same timeout) when it sets them."""
    return documented if pauses_s is None else RetrySchedule(tuple(pauses_s), documented.timeout_s)


async def deliver(
    url: str,
    body: bytes,
    sign: Callable[[bytes], dict[str, str]],
    retries: RetrySchedule,
    log: list[dict[str, Any]],
    entry: dict[str, Any],
    *,
    duplicate: bool = False,
) -> None:
    """POST `body` until an attempt gets a 2xx or the schedule runs out; one `log` line per attempt.

    `duplicate`: once delivered, send the identical request (same headers, same delivery id) once
    more, as an at-least-once sender may (Fal.ai, Replicate, Standard Webhooks senders): it must get
    a 2xx again, or the sender keeps retrying.
    """
    for attempt, pause in enumerate((0.0, *retries.pauses_s), start=1):
        await asyncio.sleep(pause)
        headers = {"content-type": "application/json", **sign(body)}
        record = await _post(url, body, headers, retries.timeout_s, {**entry, "attempt": attempt})
        log.append(record)
        if 200 <= record.get("status", 0) < 300:
            if duplicate:
                log.append(await _post(url, body, headers, retries.timeout_s, {**entry, "duplicate": True}))
            return


async def _post(
    url: str, body: bytes, headers: dict[str, str], timeout_s: float, entry: dict[str, Any]
) -> dict[str, Any]:
    record: dict[str, Any] = {**entry, "sent_at": time.time()}
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as http:
            response = await http.post(url, content=body, headers=headers)
        record["status"] = response.status_code
    except httpx.HTTPError as exc:
        record["error"] = type(exc).__name__
    return record
