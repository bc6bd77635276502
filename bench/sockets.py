"""The browser-free tier: N real tabs of one project as socket clients (e2e/socket_tabs.py).

Each completion is driven through the app's signed KIE.ai webhook, as a provider would.
A sample is tied to its own job: the `webhook.received` step in that job's timeline,
and the arrival at each client of the `canvas.change` that carries that job completed.
A missing or negative sample stops the run (`SampleError`), it never becomes a number.
Server CPU per change is the app's process-group CPU time over a batch of completions.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import httpx

from e2e.seed import SampleError, Seeder
from e2e.server import FakeProviderServer
from e2e.socket_tabs import Received, SocketTab

CLIENTS_PER_CONNECT_BATCH = 50


def group_cpu_s(pgid: int) -> float:
    """User + system CPU seconds of every process in the group (the app and its workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getpgid(int(entry)) != pgid:
                continue
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, ProcessLookupError, ValueError, IndexError):
            continue
    return total / ticks


def machine_busy_s() -> float:
    """CPU seconds every core of this machine spent busy (not idle, not waiting for I/O) since boot."""
    with open("/proc/stat") as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """This process's CPU seconds: the benchmark's client."""
    times = os.times()
    return times.user + times.system


def _completed(job_id: str):
    def match(item: Received) -> bool:
        return item.event == "canvas.change" and any(
            job["id"] == job_id and job["status"] == "completed" for job in item.message.get("jobs", [])
        )

    return match


async def open_tabs(url: str, project_id: int, count: int) -> list[SocketTab]:
    tabs = [SocketTab(url, project_id) for _ in range(count)]
    for start in range(0, count, CLIENTS_PER_CONNECT_BATCH):
        await asyncio.gather(*(tab.open(timeout_s=120) for tab in tabs[start : start + CLIENTS_PER_CONNECT_BATCH]))
    return tabs


async def fan_out(
    driver: Seeder,
    kie: FakeProviderServer,
    app_pid: int,
    clients: int,
    completions: int,
    image_url: str,
    jobs_in_project: int = 10,
) -> dict[str, Any]:
    """Webhook received (and completion committed) -> change at the last client; CPU and bytes per change."""
    project = await asyncio.to_thread(
        driver.project, f"fan-out {clients} {time.time_ns()}", jobs_in_project, completions
    )
    # The app confirms each callback with the provider's recordInfo, as it does a real one.
    await asyncio.to_thread(kie.add_finished, [task_id for _, _, task_id in project.pending], image_url)
    tabs = await open_tabs(driver.url, project.id, clients)
    pgid = os.getpgid(app_pid)
    latencies: list[float] = []
    pushes: list[float] = []
    frame_bytes: list[int] = []
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            cpu_before = group_cpu_s(pgid)
            marks = [len(tab.received) for tab in tabs]
            for job in project.pending:
                (await driver.complete(http, job, image_url)).raise_for_status()
                arrivals = await asyncio.gather(*(tab.wait_for(_completed(job[0])) for tab in tabs))
                received = driver.step_at(job[0], "webhook.received")
                committed = driver.step_at(job[0], "status.completed")
                last = max(a.at for a in arrivals)
                if not received <= committed <= last:
                    raise SampleError(f"job {job[0]}: received {received}, committed {committed}, delivered {last}")
                latencies.append((last - received) * 1000)
                pushes.append((last - committed) * 1000)
            cpu = group_cpu_s(pgid) - cpu_before
        # Every room message one client got for these completions, the first client standing for all.
        changes = [r for r in tabs[0].received[marks[0] :] if r.event == "canvas.change"]
        frame_bytes = [r.size for r in changes]
        messages = len(changes)
    finally:
        await asyncio.gather(*(tab.close() for tab in tabs), return_exceptions=True)
    if len(latencies) != completions:
        raise SampleError(f"{len(latencies)} of {completions} samples")
    return {
        "latency_ms": latencies,
        "push_ms": pushes,
        "cpu_ms_per_change": cpu * 1000 / max(messages, 1),
        "cpu_ms_per_completion": cpu * 1000 / completions,
        "bytes_per_change": frame_bytes,
        "changes": messages,
    }
