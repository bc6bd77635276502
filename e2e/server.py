"""The real app as a separate process, the way `make run` starts it."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import redis

from deploy.cluster import Cluster, stop_process, wait_until_up, worker_name
from tests.isolation import free_port
from tests.postgres import fresh_database
from tests.wait import wait_until

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def root_workdir_lock() -> Iterator[None]:
    """Held while an app builds the checkout's own `.web`, and while a copy of it is made.

    With parallel workers (`make test`), one worker's app may be rebuilding `.web` as another
    copies it: the copy would be half of a build.
    """
    path = ROOT / ".tools" / "reflex-web.lock"
    path.parent.mkdir(exist_ok=True)
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


_root_workdir_claim: list[IO[str]] = []


def claim_root_workdir() -> bool:
    """Whether this process's apps may use the checkout's own `.web` (one test process's may:
    the first to ask; it keeps the claim until it exits). Others' apps use copies."""
    if not _root_workdir_claim:
        claim = (ROOT / ".tools" / "reflex-web.owner").open("a")
        try:
            fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            claim.close()
            return False
        _root_workdir_claim.append(claim)
    return True


def own_reflex_workdirs(directory: Path) -> dict[str, str]:
    """Reflex's `.web` and `.states` under `directory`, for an app started beside another one.

    Every start rebuilds the frontend and wipes the states, which would pull them from
    under a running server. The copy reuses the installed frontend packages.
    """
    with root_workdir_lock():
        return _copied_workdirs(directory)


def _copied_workdirs(directory: Path) -> dict[str, str]:
    web = directory / "web"
    if not web.exists() and (ROOT / ".web").is_dir():
        shutil.copytree(ROOT / ".web", web, symlinks=True)
    return {"REFLEX_WEB_WORKDIR": str(web), "REFLEX_STATES_WORKDIR": str(directory / "states")}


@dataclass
class FakeProviderServer:
    """A fake provider (`e2e/fakes/<module>.py`) as its own process on loopback."""

    module: str
    log_path: Path
    api_key: str
    extra_args: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [
            sys.executable,
            "-m",
            f"e2e.fakes.{self.module}",
            "--port",
            str(self.port),
            "--api-key",
            self.api_key,
            *self.extra_args,
        ]
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
        )
        wait_until_up(self.process, [f"{self.url}/_fake/health"], self.log_path)

    def configure(self, **config: object) -> None:
        httpx.post(f"{self.url}/_fake/config", json=config).raise_for_status()

    def add_finished(self, task_ids: list[str], result_url: str) -> None:
        """Tasks the fake answers as finished with `result_url` (fakes that support it: KIE.ai)."""
        body = {"task_ids": task_ids, "result_url": result_url}
        httpx.post(f"{self.url}/_fake/finished", json=body, timeout=30).raise_for_status()

    def state(self, path: str) -> dict:
        # Generous: a fake renders in its event loop, and 20 renders at once on a busy machine
        # hold its answer for longer than httpx's default 5 s.
        return httpx.get(f"{self.url}/_fake/{path}", timeout=60).json()

    def stop(self) -> None:
        stop_process(self.process)


@dataclass
class AppServer:
    data_dir: Path
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    #: A second app running beside the session's one needs its own `.web` and `.states`;
    #: without, an app uses the checkout's, or a copy when another test process holds those.
    private_workdirs: bool = False
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "app.log"

    def start(self) -> None:
        env = {
            **os.environ,
            "PORT": str(self.port),
            "DATA_DIR": str(self.data_dir),
            "PUBLIC_BASE_URL": self.url,
            "LOG_FORMAT": "json",
            "LOCAL_PROVIDER_DELAY_S": "1.5",
            **self.env,
        }
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with root_workdir_lock():
            if not self.private_workdirs and claim_root_workdir():
                self._run(env)  # builds the checkout's `.web`: nobody copies it meanwhile
                return
            env |= _copied_workdirs(self.data_dir)
        self._run(env)

    def _run(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            ["bash", "-c", "source scripts/env.sh && exec reflex run --env prod --single-port"],
            cwd=ROOT,
            env=env,
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until_up(self.process, [f"{self.url}/healthz", self.url], self.log_path)

    def stop(self) -> None:
        stop_process(self.process)

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown code runs, as in a crash."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def log_lines(self) -> list[dict]:
        """Every structured (JSON) line the app logged."""
        events = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    events.append(json.loads(line))
                except ValueError:
                    continue
        return events

    def log_events(self, step: str, job_id: str | None = None) -> list[dict]:
        """Structured log lines of one step (optionally of one job)."""
        return [e for e in self.log_events_of(job_id) if e.get("step") == step]

    def log_events_of(self, job_id: str | None) -> list[dict]:
        """What `grep <job id>` over the logs finds (every line when `job_id` is None)."""
        return [e for e in self.log_lines() if job_id is None or e.get("job_id") == job_id]

    def jobs_by_request(self, project_id: int) -> dict[str, int]:
        """How many jobs each client request id made in the project ("None": a job no click made)."""
        with sqlite3.connect(f"file:{self.data_dir / 'app.db'}?mode=ro", uri=True) as connection:
            rows = connection.execute(
                "SELECT client_request_id, count(*) FROM job WHERE project_id = ? GROUP BY client_request_id",
                (project_id,),
            )
            return {str(request_id): int(n) for request_id, n in rows}

    def job_statuses(self, project_id: int) -> dict[str, tuple[str, str]]:
        """Each job of the project by id, newest first (as the Queue orders them): its status and error."""
        with sqlite3.connect(f"file:{self.data_dir / 'app.db'}?mode=ro", uri=True) as connection:
            rows = connection.execute(
                "SELECT id, status, error FROM job WHERE project_id = ? ORDER BY created_at DESC, id",
                (project_id,),
            )
            return {str(job_id): (str(status).lower(), str(error or "")) for job_id, status, error in rows}


@contextmanager
def running_cluster(
    workdir: Path, workers: int, database_url: str, redis_url: str, env: dict[str, str]
) -> Iterator[Cluster]:
    """The scaled configuration (workers under supervisord behind HAProxy) on the given database and Redis."""
    port = free_port()
    cluster = Cluster(
        port=port,
        worker_ports=[free_port() for _ in range(workers)],
        stats_port=free_port(),
        log_dir=workdir / "logs",
        run_dir=workdir / "run",
        env={
            "DATABASE_URL": database_url,
            "REFLEX_REDIS_URL": redis_url,
            "DATA_DIR": str(workdir / "data"),
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            **own_reflex_workdirs(workdir),
            "LOG_FORMAT": "json",
            **env,
        },
    )
    try:
        failed = cluster.start()
        assert not failed, f"workers that could not start: {failed}"
        yield cluster
    finally:
        cluster.stop()


@contextmanager
def scaled_cluster(workdir: Path, workers: int, redis_db: int, env: dict[str, str]) -> Iterator[Cluster]:
    """The scaled configuration on a fresh PostgreSQL database and its own Redis database (flushed)."""
    redis_url = f"redis://127.0.0.1:6379/{redis_db}"
    redis.Redis.from_url(redis_url).flushdb()
    with fresh_database() as database_url:
        try:
            with running_cluster(workdir, workers, database_url, redis_url, env) as cluster:
                yield cluster
        finally:
            redis.Redis.from_url(redis_url).flushdb()


def tab_joins(cluster: Cluster, project_id: int) -> list[int]:
    """How many times a tab joined the project, per worker, as the workers' logs say so far.

    A worker logs the join after it sent the tab its snapshot, and supervisord copies the
    line to the file a moment later: a tab can show the project before its join is on disk,
    so callers wait for the count they expect rather than read it once.
    """
    counts = []
    for index in range(len(cluster.worker_ports)):
        lines = (cluster.log_dir / f"{worker_name(index)}.log").read_text(errors="replace").splitlines()
        entries = (json.loads(line) for line in lines if line.startswith("{") and '"tab.joined"' in line)
        counts.append(sum(1 for entry in entries if entry.get("project_id") == project_id))
    return counts


def wait_for_spread(cluster: Cluster, project_id: int) -> list[int]:
    """The joins per worker, once every worker logged a tab joining the project.

    The balancer hands websockets out in turns, so consecutive tabs land on different
    workers; a wait that runs out says how the joins fell.
    """
    return wait_until(
        lambda: tab_joins(cluster, project_id), all, what="a tab join logged on every worker", timeout_s=20
    )
