"""Sign-in attempts, rate limited per account and per client address (`core.people.rate_limits`).

Per account, so one password cannot be guessed from many addresses; per address, so one
client cannot try many accounts.
"""

from __future__ import annotations

from limits import RateLimitItem, parse

from core.logs import get_logger, log_step
from core.people.rate_limits import RateCounter

log = get_logger("sign_in_limits")


class SignInLimiter:
    def __init__(self, per_account: str, per_address: str, storage_url: str = "") -> None:
        self._counter = RateCounter(storage_url)
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
                wait = max(wait, self._counter.wait_after_hit(limit, "sign-in", scope, key))
        except Exception:
            log.warning("sign-in limits unavailable; attempt allowed", exc_info=True, extra={"step": "auth.unlimited"})
            return 0
        if wait:
            log_step(log, "auth.rate_limited", retry_after_s=wait)
        return wait
