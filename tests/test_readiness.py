"""Liveness and readiness: each check's verdict, so an operator sees what is wrong."""

from __future__ import annotations

import httpx

from core.root import Core


async def test_readiness_reports_each_check(core: Core, client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    not_ready = await client.get("/readyz")
    assert not_ready.status_code == 503
    expected = {"database": "ok", "change_feed": "no listener is running", "config": "ok"}
    if core.listener is not None:
        expected["change_listener"] = "not started"
    assert not_ready.json()["checks"] == expected
    if core.listener is not None:
        return  # PostgreSQL: the listener's own tests cover its readiness
    with core.notifier.subscribe():
        ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    core.db.engine.dispose()
    core.settings.data_dir.joinpath("app.db").unlink()
    core.settings.data_dir.joinpath("app.db").mkdir()  # a database that cannot be opened
    with core.notifier.subscribe():
        broken = await client.get("/readyz")
    assert broken.status_code == 503 and broken.json()["checks"]["database"].startswith("unreachable")
