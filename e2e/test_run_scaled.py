"""`make run-scaled` as an operator runs it: one command up, one SIGTERM down, nothing left behind."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deploy.cluster import ROOT, Cluster
from e2e.private_services import PrivateRedis
from e2e.server import free_port, own_reflex_workdirs, root_workdir_lock
from tests.postgres import fresh_database
from tests.wait import wait_until

WORKERS = 2
STOP_BUDGET_S = 15


def port_block(size: int) -> int:
    """A port whose `size` successors are free too (make run-scaled puts workers and stats there)."""
    for _ in range(50):
        port = free_port()
        if all(is_free(port + offset) for offset in range(size)):
            return port
    raise RuntimeError("no block of free ports")


def is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def descendants(pid: int) -> set[int]:
    """Every live process under `pid` (read from /proc; workers sit in process groups of their own)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def make_run_scaled(checkout: Path, env: dict[str, str], port: int, workers: int, log: Path) -> subprocess.Popen[bytes]:
    """`make run-scaled` in `checkout`, in a process group of its own, its output in `log`.

    `-o setup`: the machine is set up already (a test must not reinstall the shared venv).
    """
    return subprocess.Popen(
        ["make", "-o", "setup", "run-scaled", f"PORT={port}", f"WORKERS={workers}"],
        cwd=checkout,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@pytest.fixture
def services() -> Iterator[tuple[str, str]]:
    redis_server = PrivateRedis()
    redis_server.start()
    try:
        with fresh_database() as database_url:
            yield database_url, redis_server.url
    finally:
        redis_server.stop()


@pytest.mark.parametrize(("target", "a_port_taken"), [("process group", False), ("main process", True)])
def test_a_sigterm_to_make_run_scaled_stops_every_process_and_frees_every_port(
    tmp_path: Path, services: tuple[str, str], target: str, a_port_taken: bool
) -> None:
    """With one worker's port taken by someone else, that worker is reported FATAL and the rest serve."""
    database_url, redis_url = services
    port = port_block(WORKERS + 2)  # HAProxy, the workers, the stats page
    squatter = socket.socket()
    if a_port_taken:
        squatter.bind(("127.0.0.1", port + WORKERS))  # the last worker's
        squatter.listen()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REFLEX_REDIS_URL": redis_url,
        "DATA_DIR": str(tmp_path / "data"),
        **own_reflex_workdirs(tmp_path),
    }
    make = make_run_scaled(ROOT, env, port, WORKERS, tmp_path / "make.log")
    try:
        wait_until(
            lambda: make.poll() is None and ready(port),
            what=f"make run-scaled to serve /readyz on {port} (see {tmp_path / 'make.log'})",
            timeout_s=300,
        )
        started = descendants(make.pid)
        assert len(started) >= WORKERS + 3 - a_port_taken, started  # the cluster, supervisord, HAProxy, workers
        if a_port_taken:
            wait_until(
                lambda: (tmp_path / "make.log").read_text(),
                lambda log: f"worker-{WORKERS - 1} could not start (FATAL)" in log,
                what="make run-scaled to report the worker that could not start",
                timeout_s=30,
            )

        if target == "process group":
            os.killpg(make.pid, signal.SIGTERM)
        else:
            os.kill(make.pid, signal.SIGTERM)
        began = time.monotonic()
        wait_until(
            lambda: [pid for pid in started if alive(pid)],
            lambda left: not left,
            what=f"every process make run-scaled started to end after a SIGTERM to its {target}",
            timeout_s=STOP_BUDGET_S,
        )
        took = time.monotonic() - began
        squatter.close()
        held = [p for p in range(port, port + WORKERS + 2) if not is_free(p)]
        assert not held, f"ports still held after {took:.1f}s: {held}"
        print(f"SIGTERM to the {target}: every process gone in {took:.1f}s")
    finally:
        squatter.close()
        make.wait(timeout=30)
        for pid in descendants(make.pid) | {make.pid}:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def fresh_clone(into: Path) -> Path:
    """The tracked files as they are in the working tree (a clone of what is being tested), with this
    machine's set-up (`.venv`, `.tools`) linked in and no `data/`: what a newcomer has after `make setup`.
    The compiled frontend is copied when there is one, only to save its packages' install."""
    clone = into / "clone"
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name)
    for tool in (".venv", ".tools"):
        (clone / tool).symlink_to(ROOT / tool)
    with root_workdir_lock():  # not while another worker's app rebuilds it (`make test` runs in parallel)
        if (ROOT / ".web").is_dir():
            shutil.copytree(ROOT / ".web", clone / ".web", symlinks=True)
    assert not (clone / "data").exists()
    return clone


def test_make_run_scaled_serves_from_a_fresh_clone_with_the_default_data_dir(
    tmp_path: Path, services: tuple[str, str]
) -> None:
    """With `DATA_DIR` unset (`data`, relative), HAProxy got a relative admin socket path, read it as an
    address and never served: "HAProxy did not serve". The other tests here set an absolute `DATA_DIR`."""
    database_url, redis_url = services
    clone = fresh_clone(tmp_path)
    port = port_block(3)  # HAProxy, one worker, the stats page
    env = {key: value for key, value in os.environ.items() if key not in ("DATA_DIR", "VIRTUAL_ENV")}
    env.update(DATABASE_URL=database_url, REFLEX_REDIS_URL=redis_url)
    make = make_run_scaled(clone, env, port, 1, tmp_path / "make.log")
    try:
        log = tmp_path / "make.log"
        wait_until(
            lambda: make.poll() is not None or "Running: open" in log.read_text(),
            what=f"make run-scaled to say it is running, or to give up (see {log})",
            timeout_s=300,
        )
        assert make.poll() is None, log.read_text()[-3000:]
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 200
        # The default data directory, in the clone; its sockets in a short folder of their own.
        assert (clone / "data" / "run" / "haproxy.cfg").is_file()
        cluster = Cluster(port=port, worker_ports=[], stats_port=0, log_dir=clone, run_dir=clone / "data" / "run")
        assert (cluster.socket_dir / "haproxy.sock").is_socket()
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGTERM)
        make.wait(timeout=30)
