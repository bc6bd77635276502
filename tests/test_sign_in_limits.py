"""Sign-in attempts are limited per account and per client address, with a clear 429 and Retry-After."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis

from core.people.sign_in_limits import SignInLimiter
from core.root import Core
from core.settings import Settings
from rxapp.api import build_api
from tests.isolation import redis_url

PASSWORD = "long enough"


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[Core]:
    core = Core.build(
        Settings(
            data_dir=tmp_path,
            public_base_url="http://testapp",
            sign_in_limit_per_account="3/minute",
            sign_in_limit_per_address="5/minute",
            trusted_proxy_hops=1,  # as behind HAProxy
        )
    )
    for name in ("ann", "bob", "cat", "dan", "eve", "fay"):
        core.accounts.sign_up(f"{name}@example.com", PASSWORD)
    yield core
    await core.aclose()


async def sign_in(core: Core, email: str, password: str = PASSWORD, via: str = "") -> httpx.Response:
    """A sign-in post from the proxy, for the client `via` (X-Forwarded-For), or straight from 127.0.0.1."""
    transport = httpx.ASGITransport(app=build_api(core), client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testapp") as http:
        headers = {"x-forwarded-for": via} if via else {}
        return await http.post("/login", data={"email": email, "password": password}, headers=headers)


async def test_an_account_gets_a_few_tries_then_a_429_with_retry_after_from_any_address(core: Core) -> None:
    for attempt in range(3):
        wrong = await sign_in(core, "ann@example.com", "guess", via=f"10.0.0.{attempt}")
        assert wrong.status_code == 400
    refused = await sign_in(core, "ANN@example.com", via="10.0.0.9")  # the right password, another address
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert "Too many sign-in attempts" in refused.text and 'role="alert"' in refused.text
    assert "set-cookie" not in refused.headers  # nobody was signed in
    assert (await sign_in(core, "bob@example.com", via="10.0.0.9")).status_code == 303  # other accounts go on


async def test_an_address_gets_a_few_tries_over_all_accounts_and_cannot_pick_another(core: Core) -> None:
    for name in ("ann", "bob", "cat", "dan", "eve"):
        assert (await sign_in(core, f"{name}@example.com", "guess", via="10.0.0.7")).status_code == 400
    refused = await sign_in(core, "fay@example.com", via="10.0.0.7")
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    # A client-written X-Forwarded-For entry before the proxy's own does not change its address.
    assert (await sign_in(core, "fay@example.com", via="1.2.3.4, 10.0.0.7")).status_code == 429
    assert (await sign_in(core, "fay@example.com", via="10.0.0.8")).status_code == 303


def test_with_redis_every_worker_counts_the_same_attempts() -> None:
    url = redis_url()
    redis.Redis.from_url(url).ping()
    account = f"{uuid.uuid4().hex}@example.com"
    first, second = SignInLimiter("2/minute", "100/minute", url), SignInLimiter("2/minute", "100/minute", url)
    assert first.attempt(account, "10.0.0.1") == 0
    assert second.attempt(account, "10.0.0.2") == 0
    assert first.attempt(account, "10.0.0.3") > 0
    assert second.attempt(account, "10.0.0.4") > 0


def test_an_unreachable_counter_store_lets_sign_in_go_on() -> None:
    limiter = SignInLimiter("1/minute", "1/minute", "redis://127.0.0.1:1/0")
    assert limiter.attempt("ann@example.com", "10.0.0.1") == 0
    assert limiter.attempt("ann@example.com", "10.0.0.1") == 0
