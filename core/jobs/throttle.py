"""Keeps new tasks within a provider's documented rate limit (`SubmitLimit`).

A moving window per provider account (the `limits` library, in memory): a burst of
Generate clicks waits here, in `queued`, rather than earning 429s the provider does not
queue. The window lives in this process: with several worker processes each keeps its
own, so an account may see up to N times the cap; the 429s that can then happen are
retried with backoff like any other.
"""

from __future__ import annotations

import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from core.contract import SubmitLimit


class SubmitThrottle:
    def __init__(self) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    async def take(self, limit: SubmitLimit, provider: str) -> float:
        """Take a slot for one new task: 0 when taken, else how many seconds until one frees up."""
        item = RateLimitItemPerSecond(limit.tasks, limit.per_s)
        if await self._limiter.hit(item, provider, limit.account):
            return 0.0
        stats = await self._limiter.get_window_stats(item, provider, limit.account)
        return max(0.05, stats.reset_time - time.time())
