"""Liveness and readiness: each check's verdict, so an operator sees what is wrong."""

from __future__ import annotations

import dataclasses
import socket

import httpx

from core.root import Core


async def test_readiness_reports_each_check(core: Core, client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    not_ready = await client.get("/readyz")
    assert not_ready.status_code == 503
    expected = {
        "database": "ok",
        "change_feed": "no listener is running",
        "delivery_ledger": "the sweep has not run yet",
        "config": "ok",
    }
    if core.listener is not None:
        expected["change_listener"] = "not started"
    assert not_ready.json()["checks"] == expected
    if core.listener is not None:
        return  # PostgreSQL: the listener's own tests cover its readiness
    core.delivery.sweep()
    with core.notifier.subscribe():
        ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    core.db.engine.dispose()
    core.settings.data_dir.joinpath("app.db").unlink()
    core.settings.data_dir.joinpath("app.db").mkdir()  # a database that cannot be opened
    with core.notifier.subscribe():
        broken = await client.get("/readyz")
    assert broken.status_code == 503 and broken.json()["checks"]["database"].startswith("unreachable")


async def test_readiness_pings_redis_when_the_app_shares_state_through_it(core: Core) -> None:
    """The scaled setup: a stopped Redis makes the worker unready, with the reason."""
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        stopped = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
    for url, verdict in (("redis://127.0.0.1:6379/0", "ok"), (stopped, "unreachable: ConnectionError")):
        settings = core.settings.model_copy(update={"redis_url": url})
        assert (await dataclasses.replace(core, settings=settings).readiness())["redis"] == verdict
