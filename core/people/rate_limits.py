"""Counted rate limits (the `limits` library) in the app's one counter store.

Counted in Redis when the app runs with Redis (every worker shares the counts), in memory
otherwise (one process). A moving window: at most N hits in any span of the period, so
there is no burst at a window's edge. Used by sign-in (`core.people.sign_in_limits`) and by the
Share dialog's `Add` (`core.people.sharing`).
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter


class RateCounter:
    def __init__(self, storage_url: str = "") -> None:
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_url or "memory://"))

    def wait_after_hit(self, limit: RateLimitItem, *key: str) -> int:
        """Count one hit of `key`: 0 when it is within `limit`, else the seconds until one may be.

        Raises what the store raises when it is unreachable: the caller decides whether to go on.
        """
        if self._limiter.hit(limit, *key):
            return 0
        reset_at = self._limiter.get_window_stats(limit, *key).reset_time
        return max(math.ceil(reset_at - time.time()), 1)
