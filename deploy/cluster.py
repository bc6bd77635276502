"""The scaled configuration on one machine: PostgreSQL + Redis + N backend workers + a balancer.

Why not `GRANIAN_WORKERS=N reflex run`: granian stops every worker when one
dies. Here each worker is its own process (granian, one worker, serving API,
websocket and the exported frontend), so a crashed worker costs only its own
connections; its tabs reconnect through the balancer to another worker and
resync from the database.

The frontend is exported once with `PORT` set to the balancer's port: the page
opens its websocket to that port, which is why every worker sits behind one
address (one machine: `deploy.balancer`; several machines: any TCP/HTTP load
balancer, no sticky sessions needed).

Run: `python -m deploy.cluster --port 3000 --workers 3` (what `make run-scaled` does).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from core.settings import get_settings

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 300
DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/canvas"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def wait_until_up(process: subprocess.Popen[bytes], urls: list[str], log_path: Path) -> None:
    """Wait until every URL answers 200, or fail with the process's log."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited early:\n{log_path.read_text()[-3000:]}")
        try:
            if all(httpx.get(url, timeout=5).status_code == 200 for url in urls):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    os.killpg(process.pid, signal.SIGKILL)
    raise RuntimeError(f"process did not start in {START_TIMEOUT_S}s:\n{log_path.read_text()[-3000:]}")


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def in_project_env(command: str) -> list[str]:
    """A shell command run with the project's tools on PATH (scripts/env.sh)."""
    return ["bash", "-c", f"source scripts/env.sh && exec {command}"]


@dataclass
class Cluster:
    port: int
    worker_ports: list[int]
    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    workers: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    balancer: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        return {**os.environ, "PORT": str(self.port), "REFLEX_ENV_MODE": "prod", **self.env}

    def _spawn(
        self, command: list[str], log_name: str, extra_env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env={**self._env(), **(extra_env or {})},
            stdout=(self.log_dir / log_name).open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def prepare(self) -> None:
        """Migrate the database once and export the frontend once, before any worker starts."""
        for name, command in (
            ("migrate", [sys.executable, "-m", "core.migrate"]),
            ("export", in_project_env("reflex export --frontend-only --no-zip")),
        ):
            if self._spawn(command, f"{name}.log").wait() != 0:
                raise RuntimeError(f"{name} failed:\n{(self.log_dir / f'{name}.log').read_text()[-3000:]}")

    def start_worker(self, index: int) -> None:
        port = self.worker_ports[index]
        self.workers[index] = self._spawn(
            in_project_env(
                f"python -m granian --interface asgi --factory --host 127.0.0.1 --port {port} --workers 1 "
                "--log-level warning rxapp.rxapp:app"
            ),
            f"worker-{index}.log",
            # Reflex's own switches: serve the exported frontend, do not compile in the worker.
            {"__REFLEX_SKIP_COMPILE": "true", "__REFLEX_MOUNT_FRONTEND_COMPILED_APP": "true"},
        )
        wait_until_up(self.workers[index], [f"http://127.0.0.1:{port}/healthz"], self.log_dir / f"worker-{index}.log")

    def kill_worker(self, index: int) -> None:
        """SIGKILL one worker, as in a crash."""
        process = self.workers.pop(index)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def start(self) -> None:
        self.prepare()
        for index in range(len(self.worker_ports)):
            self.start_worker(index)
        upstream = ",".join(str(port) for port in self.worker_ports)
        self.balancer = self._spawn(
            [sys.executable, "-m", "deploy.balancer", "--listen", str(self.port), "--upstream", upstream],
            "balancer.log",
        )
        wait_until_up(self.balancer, [f"{self.url}/healthz", self.url], self.log_dir / "balancer.log")

    def stop(self) -> None:
        stop_process(self.balancer)
        for process in self.workers.values():
            stop_process(process)
        self.workers.clear()


def main() -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(description="PostgreSQL + Redis + N workers behind one port")
    parser.add_argument("--port", type=int, default=settings.port)
    parser.add_argument("--workers", type=int, default=3)
    args = parser.parse_args()
    env = {
        # The scaled configuration's defaults differ from a single process's: PostgreSQL, and
        # Redis for Reflex's state (REFLEX_REDIS_URL is Reflex's own variable, not ours).
        "DATABASE_URL": settings.database_url or DEFAULT_DATABASE_URL,
        "REFLEX_REDIS_URL": os.environ.get("REFLEX_REDIS_URL", DEFAULT_REDIS_URL),
    }
    cluster = Cluster(
        port=args.port,
        worker_ports=[args.port + 1 + i for i in range(args.workers)],
        log_dir=settings.data_dir / "logs",
        env=env,
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        cluster.start()
        print(f"Running: open http://localhost:{args.port} ({args.workers} workers; logs in {cluster.log_dir})")
        while True:  # a supervisor: a worker that dies is started again
            time.sleep(1)
            for index, process in list(cluster.workers.items()):
                if process.poll() is not None:
                    print(f"worker {index} exited ({process.returncode}); restarting it", file=sys.stderr)
                    cluster.start_worker(index)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
