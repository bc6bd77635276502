"""Parallel test workers get Redis databases and ports of their own (tests/isolation.py)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests import isolation


def test_each_worker_has_its_own_redis_database_and_none_is_the_apps(monkeypatch: pytest.MonkeyPatch) -> None:
    databases = []
    for worker in range(isolation.REDIS_DATABASES - 1):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{worker}")
        databases.append(isolation.redis_db())
    assert len(set(databases)) == len(databases) and 0 not in databases
    assert isolation.redis_url() == f"redis://127.0.0.1:6379/{databases[-1]}"
    monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{isolation.REDIS_DATABASES - 1}")
    with pytest.raises(RuntimeError, match="at most 15 workers"):
        isolation.redis_db()


def test_ports_come_from_the_workers_own_range_below_the_ephemeral_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    ephemeral_from = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ranges = []
    for worker in (0, 1, 2):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{worker}")
        first = isolation.FIRST_PORT + worker * isolation.PORTS_PER_WORKER
        ports = [isolation.free_port() for _ in range(5)]
        assert all(first <= port < first + isolation.PORTS_PER_WORKER < ephemeral_from for port in ports)
        assert len(set(ports)) == 5  # handed out one after another, not the same one twice
        ranges.append(set(ports))
    assert not (ranges[0] & ranges[1]) and not (ranges[1] & ranges[2])


def test_a_port_someone_listens_on_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")
    monkeypatch.setattr(isolation, "_next", 0)
    first = isolation.FIRST_PORT + 3 * isolation.PORTS_PER_WORKER
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", first))
        squatter.listen()
        assert isolation.free_port() == first + 1
