"""Progress ticks in one process: what a tick costs the app, and how big its message is.

`python -m e2e.progress_ticks [--tabs N] [--jobs N] [--seconds S]` (beside `make bench`, whose
package may not import the web layer). A real core (temporary
SQLite) and the real room bridge over a python-socketio server whose sockets are recorded
instead of written (as in tests/test_room_bridge.py), so this measures the app's own work:
the board's coalescing, the row, socket.io's encoding and queueing on every socket; not the
network nor the browsers. Each job's provider reports 20 times a second (a fast sampler,
with no preview: the preview's cost is its provider's), the board pushes at most 4.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import socketio

from core.contract import JobStatus, NodeKind, TaskProgress
from core.realtime.progress_relay import ProgressRelay
from core.root import Core
from core.settings import Settings
from rxapp.realtime.bridge import PROGRESS_EVENT, RoomBridge

NAMESPACE = "/_event"
REPORTS_PER_S = 20


class RecordedSockets:
    """socket.io's server, rooms and encoding, with each packet's arrival time and size recorded."""

    def __init__(self) -> None:
        self.server = socketio.AsyncServer(async_mode="asgi")
        self.namespace = socketio.AsyncNamespace(NAMESPACE)
        self.server.register_namespace(self.namespace)
        self.arrivals: list[tuple[float, int]] = []

        async def record(_eio_sid: str, packet: Any) -> None:
            self.arrivals.append((time.perf_counter(), len(packet.data)))

        self.server._send_eio_packet = record  # type: ignore[method-assign]

    async def connect(self, count: int) -> list[str]:
        return [await self.server.manager.connect(f"eio-{i}", NAMESPACE) for i in range(count)]


async def measure(tabs: int, jobs: int, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as data:
        core = Core.build(Settings(data_dir=Path(data), public_base_url="http://bench"))
        try:
            sockets = RecordedSockets()
            bridge = RoomBridge(core)
            bridge.attach(SimpleNamespace(event_namespace=sockets.namespace))  # type: ignore[arg-type]
            project = core.canvas.create_project(core.accounts.local_user().id, "bench")
            job_ids = []
            for i in range(jobs):
                node = core.canvas.add_node(project.id, NodeKind.TEXT_TO_IMAGE)
                core.canvas.update_node(node.id, prompt=f"job {i}")
                job_ids.append(core.jobs.create(node.id).id)
            for sid in await sockets.connect(tabs):
                await bridge.join(sid, project.id)

            # Latency: one report of an idle job (the board pushes it at once) -> its last socket.
            latencies = []
            for job_id in job_ids:
                sockets.arrivals.clear()
                started = time.perf_counter()
                core.progress.report(job_id, JobStatus.RUNNING, TaskProgress(percent=1))
                await core.progress.drain()
                assert len(sockets.arrivals) == tabs
                latencies.append((sockets.arrivals[-1][0] - started) * 1000)
            await asyncio.sleep(0.3)  # past every job's interval: the loop below starts from rest

            sockets.arrivals.clear()
            cpu, wall = time.process_time(), time.perf_counter()
            reports = 0
            while time.perf_counter() - wall < seconds:
                for job_id in job_ids:
                    core.progress.report(job_id, JobStatus.RUNNING, TaskProgress(percent=reports % 100))
                reports += 1
                await asyncio.sleep(1 / REPORTS_PER_S)
            await core.progress.drain()
            cpu_s, wall_s = time.process_time() - cpu, time.perf_counter() - wall
            pushes = len(sockets.arrivals) / tabs
            (row,) = core.progress.rows(project.id)[:1]
            payload = ProgressRelay(core.db.engine, core.progress, "host:1234:abcdef").payload(row)
            return {
                "tabs": tabs,
                "jobs": jobs,
                "reports_per_job_per_s": REPORTS_PER_S,
                "pushes_per_job_per_s": round(pushes / jobs / wall_s, 2),
                "socket_frame_bytes": sockets.arrivals[-1][1],
                "notify_payload_bytes": len(payload.encode()),
                "tick_to_last_socket_ms_median": round(sorted(latencies)[len(latencies) // 2], 2),
                "app_cpu_percent_of_a_core": round(100 * cpu_s / wall_s, 1),
                "app_cpu_ms_per_push": round(1000 * cpu_s / pushes, 3),
                "event": PROGRESS_EVENT,
            }
        finally:
            await core.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tabs", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    for tabs in args.tabs:
        print(json.dumps(asyncio.run(measure(tabs, args.jobs, args.seconds))))


if __name__ == "__main__":
    main()
