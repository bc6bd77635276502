"""Sign-in attempts, rate limited per account and per client address (the `limits` library).

Per account, so one password cannot be guessed from many addresses; per address, so one
client cannot try many accounts. Counted in Redis when the app runs with Redis (every
worker shares the counts), in memory otherwise (one process). A moving window: at most N
attempts in any span of the period, so there is no burst at a window's edge.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from core.logs import get_logger, log_step

log = get_logger("sign_in_limits")


class SignInLimiter:
    def __init__(self, per_account: str, per_address: str, storage_url: str = "") -> None:
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_url or "memory://"))
        self._per_account: RateLimitItem = parse(per_account)
        self._per_address: RateLimitItem = parse(per_address)

    def attempt(self, email: str, address: str) -> int:
        """Count one sign-in attempt: 0 when it may go on, else the seconds until the next may.

        When the counter store is unreachable (Redis restarting) the attempt goes on and the
        failure is logged: sign-in stays available, and password hashing still slows guessing.
        """
        keys = ((self._per_account, "account", email.strip().lower()), (self._per_address, "address", address))
        wait = 0
        try:
            for limit, scope, key in keys:
                if not self._limiter.hit(limit, "sign-in", scope, key):
                    reset_at = self._limiter.get_window_stats(limit, "sign-in", scope, key).reset_time
                    wait = max(wait, math.ceil(reset_at - time.time()), 1)
        except Exception:
            log.warning("sign-in limits unavailable; attempt allowed", exc_info=True, extra={"step": "auth.unlimited"})
            return 0
        if wait:
            log_step(log, "auth.rate_limited", retry_after_s=wait)
        return wait
