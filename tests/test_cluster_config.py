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
