"""The scaled configuration on one machine: N backend workers under supervisord, HAProxy in front.

Each worker is its own process (granian, one worker, serving API, websocket and the
exported frontend), so a crashed worker costs only its own connections: HAProxy takes
it out, its tabs reconnect through HAProxy to another worker and resync from the
database, and supervisord starts it again. PostgreSQL and Redis are the machine's
(`scripts/services.sh` starts them); every worker shares them and `DATA_DIR`.

Why supervisord rather than granian's `--workers N --respawn-failed-workers`: granian
runs its workers on one port and one lifetime, so a reload or a crash-looping worker
concerns them all, and HAProxy cannot health-check or drain one of them. supervisord
runs each worker on its own port with restart backoff (`startretries`), gives up on a
worker that cannot start (FATAL, reported here) without touching the others, stops
every process group it started on SIGTERM, and answers `supervisorctl`.

The frontend is exported once with `PORT` set to HAProxy's port: the page opens its
websocket to that port, which is why every worker sits behind one address.

Run: `python -m deploy.cluster --port 3000 --workers 3` (what `make run-scaled` does).
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import csv
import ctypes
import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from supervisor.xmlrpc import SupervisorTransport

from core.settings import get_settings

ROOT = Path(__file__).resolve().parent.parent
HAPROXY_CONFIG = ROOT / "deploy" / "haproxy.cfg"
START_TIMEOUT_S = 300
#: supervisord's grace for a worker to finish on SIGTERM before it kills the worker's group;
#: with HAProxy's own stop this keeps a whole stop under 15 s.
WORKER_STOP_WAIT_S = 6
STOP_TIMEOUT_S = 12
DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/canvas"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
PR_SET_PDEATHSIG = 1
#: Reflex's own switches for a worker: serve the frontend exported once by `prepare`, never
#: compile. Workers only: the export itself must compile, or on a fresh checkout (no `.web`
#: yet) it installs no frontend packages and fails with "react-router: command not found".
WORKER_SWITCHES = {"__REFLEX_SKIP_COMPILE": "true", "__REFLEX_MOUNT_FRONTEND_COMPILED_APP": "true"}


def wait_until_up(process: subprocess.Popen[bytes], urls: list[str], log_path: Path) -> None:
    """Wait until every URL answers 200, or fail with the process's log."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited early:\n{log_path.read_text()[-3000:]}")
        if all_answer(urls):
            return
        time.sleep(0.3)
    os.killpg(process.pid, signal.SIGKILL)
    raise RuntimeError(f"process did not start in {START_TIMEOUT_S}s:\n{log_path.read_text()[-3000:]}")


def all_answer(urls: list[str]) -> bool:
    try:
        return all(httpx.get(url, timeout=5).status_code == 200 for url in urls)
    except httpx.HTTPError:
        return False


def stop_process(process: subprocess.Popen[bytes] | None, timeout_s: float = 20) -> None:
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def in_project_env(command: str) -> list[str]:
    """A shell command run with the project's tools on PATH (scripts/env.sh)."""
    return ["bash", "-c", f"source scripts/env.sh && exec {command}"]


def die_with_parent() -> None:
    """Linux: get SIGTERM when the parent dies, e.g. `make` killed alone (make forwards no signal)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def haproxy_config(worker_ports: list[int]) -> str:
    """deploy/haproxy.cfg with one server line per worker under each backend's "# servers"."""
    suffixes = {  # in the file's order of backends: pages, sockets, probes
        "pages": "",
        "sockets": " track pages/w{i}",
        "probes": "",
    }
    parts = HAPROXY_CONFIG.read_text().split("    # servers\n")
    if len(parts) != len(suffixes) + 1:
        raise RuntimeError(f"{HAPROXY_CONFIG} should have {len(suffixes)} '# servers' lines")
    text = parts[0]
    for part, suffix in zip(parts[1:], suffixes.values(), strict=True):
        servers = "".join(
            f"    server w{i} 127.0.0.1:{port}{suffix.format(i=i)}\n" for i, port in enumerate(worker_ports)
        )
        text += "    # servers\n" + servers + part
    return text


def worker_name(index: int) -> str:
    return f"worker-{index}"


@dataclass
class Cluster:
    port: int
    worker_ports: list[int]
    stats_port: int
    log_dir: Path
    run_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    bind_address: str = "127.0.0.1"
    supervisord: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        # The configs written here are read by programs that resolve a relative path their own way:
        # HAProxy takes `stats socket "data/run/haproxy.sock"` for an address ("missing port
        # specification") and never serves. `DATA_DIR=data`, the default, is relative.
        self.log_dir = self.log_dir.resolve()
        self.run_dir = self.run_dir.resolve()

    @property
    def socket_dir(self) -> Path:
        """Where the Unix sockets live (supervisord's, HAProxy's admin one), one folder per run folder.

        Not the run folder itself: a socket's path must fit in 108 bytes (`sun_path`), which an
        absolute `data/run` under a deep checkout does not ("AF_UNIX path too long").
        """
        digest = hashlib.sha256(str(self.run_dir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"canvas-{digest}"

    @property
    def supervisor_socket(self) -> Path:
        return self.socket_dir / "supervisor.sock"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stats_url(self) -> str:
        return f"http://127.0.0.1:{self.stats_port}/"

    def _env(self) -> dict[str, str]:
        return {
            **{key: value for key, value in os.environ.items() if key not in WORKER_SWITCHES},
            # Every worker's page talks to HAProxy's port; HAProxy reads the rest of these.
            "PORT": str(self.port),
            "BIND_ADDRESS": self.bind_address,
            "STATS_PORT": str(self.stats_port),
            "SOCKET_DIR": str(self.socket_dir),
            "REFLEX_ENV_MODE": "prod",
            # The client's address is HAProxy's X-Forwarded-For (sign-in limits per address).
            "TRUSTED_PROXY_HOPS": "1",
            **self.env,
        }

    def _run(self, command: list[str], log_name: str) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / log_name).open("ab") as log:
            if subprocess.run(command, cwd=ROOT, env=self._env(), stdout=log, stderr=subprocess.STDOUT).returncode:
                raise RuntimeError(f"{command} failed:\n{(self.log_dir / log_name).read_text()[-3000:]}")

    def prepare(self) -> None:
        """Migrate the database once and export the frontend once, before any worker starts."""
        self._run([sys.executable, "-m", "core.migrate"], "migrate.log")
        self._run(in_project_env("reflex export --frontend-only --no-zip"), "export.log")

    def supervisor_config(self) -> str:
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(haproxy).exists():
            raise RuntimeError("haproxy is not installed: run scripts/setup.sh (Debian's package)")
        config = configparser.ConfigParser(interpolation=None)
        config["supervisord"] = {
            "nodaemon": "true",
            "logfile": str(self.log_dir / "supervisord.log"),
            "pidfile": str(self.run_dir / "supervisord.pid"),
            "childlogdir": str(self.log_dir),
        }
        config["unix_http_server"] = {"file": str(self.supervisor_socket), "chmod": "0700"}
        config["rpcinterface:supervisor"] = {
            "supervisor.rpcinterface_factory": "supervisor.rpcinterface:make_main_rpcinterface"
        }
        config["supervisorctl"] = {"serverurl": f"unix://{self.supervisor_socket}"}
        for index, port in enumerate(self.worker_ports):
            config[f"program:{worker_name(index)}"] = {
                "command": f"{sys.executable} -m granian --interface asgi --factory --host 127.0.0.1 --port {port} "
                "--workers 1 --log-level warning rxapp.rxapp:app",
                "directory": str(ROOT),
                "environment": ",".join(f'{key}="{value}"' for key, value in WORKER_SWITCHES.items()),
                "autorestart": "true",
                # A worker counts as started once it stayed up this long (its boot takes seconds);
                # one that dies sooner is retried after 1, 2, 3 s, then FATAL: reported, others untouched.
                "startsecs": "15",
                "startretries": "3",
                "stopsignal": "TERM",
                "stopwaitsecs": str(WORKER_STOP_WAIT_S),
                # granian's worker is a child of its main process: signal the whole group.
                "stopasgroup": "true",
                "killasgroup": "true",
                "redirect_stderr": "true",
                "stdout_logfile": str(self.log_dir / f"{worker_name(index)}.log"),
            }
        config["program:haproxy"] = {
            # -W master-worker (USR2 reloads and drains), -db stays in the foreground for supervisord.
            "command": f"{haproxy} -W -db -f {self.run_dir / 'haproxy.cfg'}",
            "autorestart": "true",
            "startsecs": "1",
            "stopsignal": "TERM",
            "stopwaitsecs": "3",
            "redirect_stderr": "true",
            "stdout_logfile": str(self.log_dir / "haproxy.log"),
        }
        lines: list[str] = []
        for section in config.sections():
            lines.append(f"[{section}]")
            lines.extend(f"{key}={value}" for key, value in config[section].items())
            lines.append("")
        return "\n".join(lines)

    def write_configs(self) -> Path:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "haproxy.cfg").write_text(haproxy_config(self.worker_ports))
        path = self.run_dir / "supervisord.conf"
        path.write_text(self.supervisor_config())
        return path

    # supervisord ---------------------------------------------------------------
    @property
    def supervisor(self) -> Any:
        """supervisord's XML-RPC interface (`supervisor.getAllProcessInfo()` and so on)."""
        transport = SupervisorTransport(None, None, f"unix://{self.supervisor_socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def states(self) -> dict[str, str]:
        """Each program's supervisord state (RUNNING, STARTING, BACKOFF, FATAL, ...)."""
        return {info["name"]: info["statename"] for info in self.supervisor.getAllProcessInfo()}

    def gave_up_on(self, name: str) -> bool:
        try:
            return self.states().get(name) == "FATAL"
        except (OSError, xmlrpc.client.Fault):
            return False  # its socket is not there yet

    def pid(self, name: str) -> int:
        return int(self.supervisor.getProcessInfo(name)["pid"])

    def worker_pid(self, index: int) -> int:
        return self.pid(worker_name(index))

    def start(self, *, die_with_this_process: bool = False) -> list[str]:
        """Start everything; return the workers that could not start (FATAL), having waited for the others."""
        self.prepare()
        config = self.write_configs()
        log = (self.log_dir / "supervisord.out").open("ab")
        self.supervisord = subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(config)],
            cwd=ROOT,
            env=self._env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent if die_with_this_process else None,
        )
        failed = [worker_name(i) for i in range(len(self.worker_ports)) if not self.wait_for_worker(i)]
        if len(failed) == len(self.worker_ports):
            raise RuntimeError(f"no worker started; see {self.log_dir}")
        # Not `wait_until_up`: its SIGKILL would orphan supervisord's programs; `stop` ends them all.
        deadline = time.monotonic() + START_TIMEOUT_S
        while not all_answer([f"{self.url}/readyz", self.url]):
            # A config HAProxy refuses makes it exit at once, and supervisord gives up on it (FATAL):
            # say so then, not after the whole start timeout.
            if self.supervisord.poll() is not None or time.monotonic() > deadline or self.gave_up_on("haproxy"):
                said = (self.log_dir / "haproxy.log").read_text()[-3000:]
                raise RuntimeError(f"HAProxy did not serve:\n{said}\nworkers' readiness: {self.readiness()}")
            time.sleep(0.3)
        # Every worker that started takes part from the first tab on (else the first tabs all land on
        # whichever worker HAProxy's checks passed first).
        self._wait_in_rotation([i for i in range(len(self.worker_ports)) if worker_name(i) not in failed])
        return failed

    def readiness(self) -> list[str]:
        """Each worker's own /readyz answer (what HAProxy's health checks read)."""
        answers = []
        for port in self.worker_ports:
            try:
                answers.append(httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).text)
            except httpx.HTTPError as exc:
                answers.append(repr(exc))
        return answers

    def wait_for_worker(self, index: int) -> bool:
        """Wait until the worker answers /healthz (True) or supervisord gave up on it (False)."""
        assert self.supervisord is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        url = f"http://127.0.0.1:{self.worker_ports[index]}/healthz"
        while time.monotonic() < deadline:
            if self.supervisord.poll() is not None:
                raise RuntimeError(f"supervisord exited:\n{(self.log_dir / 'supervisord.out').read_text()[-3000:]}")
            if self.gave_up_on(worker_name(index)):
                return False
            if all_answer([url]):
                return True
            time.sleep(0.3)
        raise RuntimeError(f"{worker_name(index)} did not start in {START_TIMEOUT_S}s")

    def start_worker(self, index: int) -> None:
        """Start a worker supervisord is not running (stopped, or given up on); wait until HAProxy sends it work."""
        if self.states()[worker_name(index)] in ("STOPPED", "EXITED", "FATAL"):
            self.supervisor.startProcess(worker_name(index), False)
        if not self.wait_for_worker(index):
            raise RuntimeError(f"{worker_name(index)} could not start; see {self.log_dir}")
        self._wait_in_rotation([index])

    def _wait_in_rotation(self, indexes: list[int]) -> None:
        """Wait until HAProxy's stats show these workers UP: it sends them work."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while any(self.server_states().get(f"w{index}") != "UP" for index in indexes):
            if time.monotonic() > deadline:
                raise RuntimeError(f"HAProxy never saw every worker ready: {self.readiness()}")
            time.sleep(0.3)

    def server_states(self) -> dict[str, str]:
        """Each worker's status on HAProxy's stats page ("UP", "DOWN", "UP 1/2", ...)."""
        answer = httpx.get(self.stats_url + ";csv", timeout=5).text.lstrip("# ")
        return {
            row["svname"]: row["status"]
            for row in csv.DictReader(io.StringIO(answer))
            if row["pxname"] == "pages" and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def kill_worker(self, index: int) -> int:
        """SIGKILL one worker's process group, as in a crash (supervisord starts it again); its pid."""
        pid = self.worker_pid(index)
        os.killpg(pid, signal.SIGKILL)
        return pid

    def reload_balancer(self) -> None:
        """HAProxy re-reads its configuration; the old process drains its connections."""
        self.supervisor.signalProcess("haproxy", "USR2")

    def stop(self) -> None:
        """SIGTERM to supervisord, which stops every program's process group; SIGKILL whatever is left."""
        if self.supervisord is None:
            return
        try:
            groups = [info["pid"] for info in self.supervisor.getAllProcessInfo() if info["pid"]]
        except (OSError, xmlrpc.client.Fault):
            groups = []
        stop_process(self.supervisord, timeout_s=STOP_TIMEOUT_S)
        for pid in groups:
            with contextlib.suppress(ProcessLookupError):  # stopped in time, as it should
                os.killpg(pid, signal.SIGKILL)


def main() -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(description="N workers under supervisord behind HAProxy on one port")
    parser.add_argument("--port", type=int, default=settings.port)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--bind", default="0.0.0.0", help="where the public port listens")
    args = parser.parse_args()
    # `make` forwards no SIGTERM to its recipe: when it dies, so does this process (and then the rest).
    die_with_parent()
    if os.getppid() == 1:
        return  # the parent died before the line above
    env = {
        # The scaled configuration's defaults differ from a single process's: PostgreSQL, and
        # Redis for Reflex's state (REFLEX_REDIS_URL is Reflex's own variable, not ours).
        "DATABASE_URL": settings.database_url or DEFAULT_DATABASE_URL,
        "REFLEX_REDIS_URL": settings.redis_url or DEFAULT_REDIS_URL,
    }
    workers = [args.port + 1 + i for i in range(args.workers)]
    cluster = Cluster(
        port=args.port,
        worker_ports=workers,
        stats_port=workers[-1] + 1,
        log_dir=settings.data_dir / "logs",
        run_dir=settings.data_dir / "run",
        env=env,
        bind_address=args.bind,
    )
    signal.signal(signal.SIGTERM, stop_once)
    try:
        failed = cluster.start(die_with_this_process=True)
        print(
            f"Running: open http://localhost:{args.port} ({args.workers} workers under supervisord behind HAProxy; "
            f"stats on {cluster.stats_url}; logs in {cluster.log_dir})",
            flush=True,
        )
        report(cluster, failed)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()


def stop_once(*_: object) -> None:
    """The first SIGTERM ends the run; more (the group's and make's death at once) must not cut the stop short."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(0)


def report(cluster: Cluster, failed: list[str]) -> None:
    """Say when a program changes state (a crash, a restart, one given up on) until supervisord ends."""
    assert cluster.supervisord is not None
    shown = {**cluster.states(), **{name: "FATAL" for name in failed}}
    for name in failed:
        print(f"{name} could not start (FATAL): see {cluster.log_dir / name}.log", file=sys.stderr, flush=True)
    while cluster.supervisord.poll() is None:
        try:
            states = cluster.states()
        except (OSError, xmlrpc.client.Fault):
            states = {}
        for name, state in states.items():
            if shown.setdefault(name, state) != state:
                print(f"{name}: {shown[name]} -> {state}", file=sys.stderr, flush=True)
                shown[name] = state
        time.sleep(1)
    sys.exit(cluster.supervisord.returncode)


if __name__ == "__main__":
    main()
