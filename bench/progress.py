"""The progress tier: 10 local renders reporting 4 times a second, watched by N socket clients.

Its own app (renders of 14 s, 10.5 of them sampling at 4 steps a second, each step with its
percent and a preview) and N tabs as socket clients (e2e/socket_tabs.py) of one project.
The jobs are queued in the database (`Seeder`), and the app submits them itself (its sweep for
queued jobs). A sample is one progress row: from the moment the app made it (its `version`, the
app's clock in ms, on this machine) to its arrival at the last of the N clients. The app's CPU
is its process group's over a window in which all 10 jobs sample.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from bench.sockets import group_cpu_s, open_tabs
from core.contract import JobStatus
from e2e.seed import SampleError, seeder_of
from e2e.server import AppServer
from e2e.socket_tabs import SocketTab

JOBS = 10
RENDER_S = 14
#: Measured while every job samples: after the last one started, before the first one ends.
WINDOW_S = 5.0
PROGRESS_EVENT = "canvas.progress"


def _rows(tab: SocketTab, since: int) -> dict[tuple[str, int], float]:
    """(job, version) -> when it reached this tab, for the progress rows after its first `since` messages."""
    return {
        (row["id"], row["version"]): item.at
        for item in tab.received[since:]
        if item.event == PROGRESS_EVENT
        for row in item.message["rows"]
    }


async def _measure(app: AppServer, clients: int) -> dict[str, Any]:
    seeder = seeder_of(app, "local/sketch")
    try:
        project = await asyncio.to_thread(seeder.project, f"progress {clients} {time.time_ns()}", 0, 0)
        tabs = await open_tabs(app.url, project.id, clients)
        try:
            jobs = [await asyncio.to_thread(seeder.book.create, project.node_id) for _ in range(JOBS)]
            # All sampling: the sweep (every 5 s) submitted them, and each render waits a quarter first.
            deadline = time.monotonic() + 30
            while any(seeder.book.get(j.id).status != JobStatus.RUNNING for j in jobs):
                if time.monotonic() > deadline:
                    raise SampleError("the jobs did not all start sampling within 30 s")
                await asyncio.sleep(0.2)
            marks = [len(tab.received) for tab in tabs]
            assert app.process is not None
            pgid = os.getpgid(app.process.pid)
            cpu, wall = group_cpu_s(pgid), time.monotonic()
            await asyncio.sleep(WINDOW_S)
            cpu, wall = group_cpu_s(pgid) - cpu, time.monotonic() - wall
            arrivals = [_rows(tab, mark) for tab, mark in zip(tabs, marks, strict=True)]
            frames = [item.size for item in tabs[0].received[marks[0] :] if item.event == PROGRESS_EVENT]
        finally:
            await asyncio.gather(*(tab.close() for tab in tabs), return_exceptions=True)
    finally:
        seeder.close()
    # Rows every client got within the window (one made just before its end may still be on its way).
    common = set(arrivals[0]).intersection(*arrivals[1:])
    if not common:
        raise SampleError("no progress row reached every client")
    latencies = sorted((max(a[key] for a in arrivals) - key[1] / 1000) * 1000 for key in common)
    if latencies[0] < -50:  # one clock on one machine: more than noise means a wrong sample
        raise SampleError(f"a row arrived {latencies[0]:.0f} ms before it was made")
    pushes_per_job_s = len(arrivals[0]) / JOBS / wall
    return {
        "latency_ms": latencies,
        "pushes_per_job_s": pushes_per_job_s,
        "cpu_percent": 100 * cpu / wall,
        "cpu_ms_per_push": 1000 * cpu / max(1, len(arrivals[0])),
        "frame_bytes": frames,
    }


def progress_suite(workdir: Path, results: Any, pct: Any) -> None:
    """`results.add(...)` rows for 10 and 100 clients; `pct(values, q)` is the suite's percentile."""
    app = AppServer(
        data_dir=workdir / "progress-app",
        env={"LOCAL_PROVIDER_DELAY_S": str(RENDER_S), "POLL_START_S": "60", "POLL_CAP_S": "60", "LOG_LEVEL": "WARNING"},
        private_workdirs=True,
    )
    print("starting the progress tier's app ...", flush=True)
    app.start()
    try:
        for clients in (10, 100):
            print(f"progress tier, {clients} clients ...", flush=True)
            run = asyncio.run(_measure(app, clients))
            latency = run["latency_ms"]
            results.add(
                f"progress row made -> last of {clients} socket clients",
                f"p50 {pct(latency, 50):.1f} / p95 {pct(latency, 95):.1f} / p99 {pct(latency, 99):.1f} ms",
                "",
                None,
                f"{len(latency)} rows of {JOBS} jobs sampling, {run['pushes_per_job_s']:.2f} pushes per job per s",
            )
            results.add(
                f"app CPU, {JOBS} jobs reporting 4 times a second, {clients} clients",
                f"{run['cpu_percent']:.1f} % of a core ({run['cpu_ms_per_push']:.2f} ms per push)",
                "",
                None,
                "whole app process group, the local renders' previews included; "
                f"{max(run['frame_bytes'])} B per progress frame",
            )
    finally:
        app.stop()
