"""The webhook route: only a verified callback for the right job changes anything."""

from __future__ import annotations

import dataclasses
import json
import socket
import time

import httpx

from core.contract import TaskRef
from core.root import Core
from providers.local import SIGNATURE_HEADER, TIMESTAMP_HEADER, LocalProvider, sign


def _local(core: Core) -> LocalProvider:
    provider = core.registry.get("local")
    assert isinstance(provider, LocalProvider)
    return provider


def _signed(core: Core, task_id: str, body: dict, *, timestamp: int | None = None, secret: str | None = None):
    ts = str(timestamp if timestamp is not None else int(time.time()))
    headers = {
        "content-type": "application/json",
        TIMESTAMP_HEADER: ts,
        SIGNATURE_HEADER: sign(secret or _local(core).secret, task_id, ts),
    }
    return json.dumps(body).encode(), headers


async def _submitted_job(core: Core, node_id: int) -> tuple[str, str, str]:
    job = core.jobs.create(node_id)
    core.jobs.mark_submitted(job.id, TaskRef("local-task-1"))
    row = core.jobs.get(job.id)
    return job.id, row.callback_token, "local-task-1"


async def test_forged_or_malformed_callbacks_change_nothing(
    core: Core, client: httpx.AsyncClient, node_id: int
) -> None:
    job_id, token, task_id = await _submitted_job(core, node_id)
    failed = {"task_id": task_id, "status": "failed", "error": "forged"}
    body, headers = _signed(core, task_id, failed)
    url = f"/api/webhooks/local/{job_id}/{token}"
    cases = [
        (f"/api/webhooks/local/{job_id}/wrong-token", body, headers, 403),
        ("/api/webhooks/local/no-such-job/x", body, headers, 404),
        (f"/api/webhooks/other/{job_id}/{token}", body, headers, 403),
        (url, b"{not json", headers, 400),
        (url, json.dumps({"status": "failed"}).encode(), headers, 400),
        (url, body, {}, 401),
        (url, *_signed(core, task_id, failed, secret="not-the-secret"), 401),
        (url, *_signed(core, task_id, failed, timestamp=int(time.time()) - 3600), 401),
        (url, *_signed(core, "someone-elses-task", {**failed, "task_id": "someone-elses-task"}), 409),
        (url, b"x" * (1024 * 1024 + 1), headers, 413),
        (url, body, {**headers, "content-type": "text/plain"}, 415),
        (url, body, {**headers, "content-type": "application/x-www-form-urlencoded"}, 415),
    ]
    before = core.jobs.get(job_id)
    for path, payload, hdrs, expected in cases:
        response = await client.post(path, content=payload, headers={"content-type": "application/json", **hdrs})
        assert response.status_code == expected, (path, response.text)
    after = core.jobs.get(job_id)
    assert (after.status, after.version, after.error) == (before.status, before.version, before.error)


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
        settings = dataclasses.replace(core.settings, redis_url=url)
        assert (await dataclasses.replace(core, settings=settings).readiness())["redis"] == verdict
