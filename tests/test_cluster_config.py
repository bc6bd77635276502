"""The scaled setup's generated configuration (deploy/cluster.py), without starting it."""

from __future__ import annotations

import configparser
import subprocess
from pathlib import Path
from typing import Any

import pytest

from deploy import cluster as cluster_module
from deploy.cluster import WORKER_SWITCHES, Cluster


def make_cluster(tmp_path: Path) -> Cluster:
    return Cluster(
        port=3100, worker_ports=[8101, 8102], stats_port=3101, log_dir=tmp_path / "logs", run_dir=tmp_path / "run"
    )


def test_only_the_workers_skip_compiling(tmp_path: Path) -> None:
    config = configparser.ConfigParser(interpolation=None)
    config.read_string(make_cluster(tmp_path).supervisor_config())
    workers = [name for name in config.sections() if name.startswith("program:worker-")]
    assert len(workers) == 2
    for name in workers:
        environment = config[name]["environment"]
        for key, value in WORKER_SWITCHES.items():
            assert f'{key}="{value}"' in environment
    assert "environment" not in config["program:haproxy"]


def test_the_frontend_export_compiles_so_a_fresh_checkout_gets_its_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A skip switch on the export made `make run-scaled` fail on a checkout without `.web`."""
    for key in WORKER_SWITCHES:
        monkeypatch.setenv(key, "true")  # even when the caller's own environment has them
    seen: list[tuple[list[str], dict[str, str]]] = []

    def fake_run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        seen.append((command, kwargs["env"]))
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(cluster_module.subprocess, "run", fake_run)
    make_cluster(tmp_path).prepare()
    exports = [env for command, env in seen if "reflex export" in " ".join(command)]
    assert len(exports) == 1
    assert not set(WORKER_SWITCHES) & set(exports[0])


def test_every_path_in_the_generated_configs_is_absolute_with_the_default_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`DATA_DIR=data` (the default) gave HAProxy `stats socket "data/run/haproxy.sock"`, which it reads
    as an address: `make run-scaled` failed on a fresh checkout with "HAProxy did not serve"."""
    monkeypatch.chdir(tmp_path)
    cluster = Cluster(
        port=3100, worker_ports=[8101], stats_port=3101, log_dir=Path("data/logs"), run_dir=Path("data/run")
    )
    cluster.write_configs()
    haproxy = (cluster.run_dir / "haproxy.cfg").read_text()
    assert 'stats socket "${SOCKET_DIR}/haproxy.sock"' in haproxy
    assert Path(cluster._env()["SOCKET_DIR"]).is_absolute()
    assert cluster.run_dir == tmp_path / "data" / "run"
    config = configparser.ConfigParser(interpolation=None)
    config.read_string((cluster.run_dir / "supervisord.conf").read_text())
    paths = [
        value.removeprefix("unix://")
        for section in config.sections()
        for key, value in config[section].items()
        if key.endswith(("file", "dir", "url")) or key == "directory"
    ]
    assert paths and all(Path(path).is_absolute() for path in paths), paths
    commands = [config[section]["command"] for section in config.sections() if section.startswith("program:")]
    assert all(Path(command.split()[-1]).is_absolute() for command in commands if "haproxy" in command)


def test_the_sockets_fit_in_a_unix_socket_path_under_a_deep_checkout(tmp_path: Path) -> None:
    """Absolute run folders under a deep checkout made supervisord fail: "AF_UNIX path too long"."""
    deep = tmp_path.joinpath(*["a-rather-long-folder-name"] * 8, "data")
    cluster = Cluster(port=3100, worker_ports=[8101], stats_port=3101, log_dir=deep / "logs", run_dir=deep / "run")
    cluster.write_configs()
    sockets = [cluster.supervisor_socket, Path(cluster._env()["SOCKET_DIR"]) / "haproxy.sock"]
    assert all(len(str(path).encode()) < 108 for path in sockets), sockets
    assert cluster.socket_dir.is_dir() and cluster.socket_dir.stat().st_mode & 0o077 == 0
    other = Cluster(port=3100, worker_ports=[8101], stats_port=3101, log_dir=tmp_path / "l", run_dir=tmp_path / "r")
    assert other.socket_dir != cluster.socket_dir  # one folder per run folder
