"""The floor under a completion: what this machine's stack costs for a signed callback, before the app's own work.

`make bench`'s ingestion rows ask for 200 completions/s on SQLite and 300/s on PostgreSQL,
on 2 cores that also run the load generator and the fakes. This tier tells what part of
that budget any completion on this stack takes, whatever the app does with it.

A bare ASGI app (`build_app`), served by granian as Reflex serves the real one, does only what
no completion may skip (issue 23, README "Webhooks"): read the signed KIE.ai callback and
check its HMAC, confirm with the fake KIE.ai's recordInfo, download the result, hash and
write it, and commit one SQLite transaction (the job's row and one timeline row) from a
worker thread, as the app does. No ORM, no staleness, no change feed, no tabs. The client,
its concurrency and the fakes are the ingestion tier's own.

Measured: the floor app's CPU per completion (a lower bound for the app's) and everything
else this machine spent per completion (client, fakes): together, with the 2 cores, they
bound the rate any app on this stack could reach here.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bench.sockets import group_cpu_s, machine_busy_s, own_cpu_s
from deploy.cluster import stop_process, wait_until_up
from e2e.seed import SampleError
from e2e.server import FakeProviderServer, free_port
from providers.kie import sign

#: The floor app's settings, from the bench process (granian calls `build_app` in its own).
KIE_URL_ENV, KIE_KEY_ENV, HMAC_ENV, DIR_ENV = "FLOOR_KIE_URL", "FLOOR_KIE_KEY", "FLOOR_HMAC", "FLOOR_DIR"


def _database(folder: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(folder / "floor.db", check_same_thread=False, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")  # the app's own setting (core/db.py)
    connection.execute(
        "CREATE TABLE IF NOT EXISTS job (id TEXT PRIMARY KEY, status TEXT, image_path TEXT, version INTEGER)"
    )
    connection.execute("CREATE TABLE IF NOT EXISTS step (job_id TEXT, step TEXT, at REAL)")
    return connection


def _commit(connection: sqlite3.Connection, job_id: str, path: str) -> None:
    connection.execute("BEGIN IMMEDIATE")
    connection.execute(
        "INSERT INTO job VALUES (?, 'completed', ?, 1) "
        "ON CONFLICT(id) DO UPDATE SET status='completed', image_path=excluded.image_path, version=version+1",
        (job_id, path),
    )
    connection.execute("INSERT INTO step VALUES (?, 'job.completed', ?)", (job_id, time.time()))
    connection.execute("COMMIT")


def build_app() -> Starlette:
    kie_url, kie_key, hmac_key = os.environ[KIE_URL_ENV], os.environ[KIE_KEY_ENV], os.environ[HMAC_ENV]
    folder = Path(os.environ[DIR_ENV])
    connection = _database(folder)
    write_lock = asyncio.Lock()  # one writer at a time, as SQLite's write lock has it
    http = httpx.AsyncClient(timeout=30)

    async def callback(request: Request) -> PlainTextResponse:
        body = await request.body()
        data = json.loads(body)["data"]
        task_id, stamp = data["taskId"], request.headers["x-webhook-timestamp"]
        if not hmac.compare_digest(sign(hmac_key, task_id, stamp), request.headers["x-webhook-signature"]):
            return PlainTextResponse("bad signature", 401)
        record = await http.get(
            f"{kie_url}/api/v1/jobs/recordInfo",
            params={"taskId": task_id},
            headers={"Authorization": f"Bearer {kie_key}"},
        )
        url = json.loads(record.json()["data"]["resultJson"])["resultUrls"][0]
        image = (await http.get(url)).content
        name = hashlib.sha256(image).hexdigest() + ".png"
        await asyncio.to_thread((folder / name).write_bytes, image)
        async with write_lock:
            await asyncio.to_thread(_commit, connection, request.path_params["job_id"], name)
        return PlainTextResponse("ok")

    async def health(_: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[Route("/api/webhooks/kie/{job_id}/{token}", callback, methods=["POST"]), Route("/health", health)]
    )


def measure(
    kie: FakeProviderServer, kie_key: str, hmac_key: str, image_url: str, workdir: Path, jobs: int, concurrency: int
) -> dict[str, float]:
    """The floor app's completions per second and CPU per completion; the client's and the rest of the machine's.

    `jobs` completions, `concurrency` of them in flight: the ingestion tier's own figures.
    """
    folder = workdir / f"floor-{time.time_ns()}"
    folder.mkdir()
    port = free_port()
    env = {**os.environ, KIE_URL_ENV: kie.url, KIE_KEY_ENV: kie_key, HMAC_ENV: hmac_key, DIR_ENV: str(folder)}
    command = [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "1", "--log-level", "warning", "bench.floor:build_app"]
    log_path = folder / "floor.log"
    server = subprocess.Popen(
        command, env=env, stdout=log_path.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        wait_until_up(server, [f"http://127.0.0.1:{port}/health"], log_path)
        tasks = [(str(uuid.uuid4()), f"floor-task-{uuid.uuid4().hex}") for _ in range(jobs)]
        kie.add_finished([task for _, task in tasks], image_url)

        async def fire() -> float:
            limit = asyncio.Semaphore(concurrency)
            async with httpx.AsyncClient(timeout=60) as http:

                async def send(job_id: str, task_id: str) -> None:
                    stamp = str(int(time.time()))
                    data = {
                        "taskId": task_id,
                        "state": "success",
                        "resultJson": json.dumps({"resultUrls": [image_url]}),
                    }
                    headers = {"X-Webhook-Timestamp": stamp, "X-Webhook-Signature": sign(hmac_key, task_id, stamp)}
                    async with limit:
                        response = await http.post(
                            f"http://127.0.0.1:{port}/api/webhooks/kie/{job_id}/token",
                            json={"code": 200, "data": data},
                            headers=headers,
                        )
                    response.raise_for_status()

                started = time.perf_counter()
                await asyncio.gather(*(send(job_id, task) for job_id, task in tasks))
                return time.perf_counter() - started

        floor_before, machine_before, client_before = group_cpu_s(server.pid), machine_busy_s(), own_cpu_s()
        elapsed = asyncio.run(fire())
        floor_s = group_cpu_s(server.pid) - floor_before
        machine_s, client_s = machine_busy_s() - machine_before, own_cpu_s() - client_before
        stored = sqlite3.connect(folder / "floor.db").execute("SELECT count(*) FROM job").fetchone()[0]
    finally:
        stop_process(server)
    if stored != jobs:
        raise SampleError(f"the floor app stored {stored} of {jobs} completions")
    if floor_s <= 0 or client_s <= 0 or floor_s + client_s > machine_s:
        raise SampleError(f"impossible CPU readings: floor {floor_s} s, client {client_s} s, machine {machine_s} s")
    per = 1000 / jobs
    return {
        "rate": jobs / elapsed,
        "floor_ms": floor_s * per,
        "client_ms": client_s * per,
        "rest_ms": (machine_s - floor_s - client_s) * per,
        "machine_ms": machine_s * per,
    }


def budget_ms(rate: float) -> float:
    """The machine CPU per completion a rate leaves on this machine's cores."""
    return (os.cpu_count() or 1) * 1000 / rate


def floor_row(measured: dict[str, float]) -> tuple[str, str, str]:
    """The row `make bench` prints for `measure`'s figures: its metric, value and note."""
    return (
        "the floor: a bare completion on this stack (granian, Starlette, httpx, raw SQLite)",
        f"{measured['floor_ms']:.1f} ms CPU per completion",
        f"{measured['rate']:.0f} completions/s, 10 KB results; HMAC, recordInfo, download, hash, write, "
        f"one transaction; the client {measured['client_ms']:.1f} ms, the fakes and the rest of the machine "
        f"{measured['rest_ms']:.1f} ms per completion; 200/s leaves {budget_ms(200):.0f} ms of machine CPU "
        f"per completion, 300/s {budget_ms(300):.1f} ms",
    )
