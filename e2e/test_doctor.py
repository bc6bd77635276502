"""`make doctor` against `make run` and `make run-scaled`, and with Redis or PostgreSQL stopped."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deploy.cluster import ROOT, Cluster
from e2e.private_services import PrivatePostgres, PrivateRedis
from e2e.server import AppServer, free_port, running_cluster
from tests.wait import wait_until


def doctor(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploy.doctor", url], cwd=ROOT, capture_output=True, text=True, timeout=180
    )


@pytest.fixture(scope="module")
def lone_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """`make run` with no tab open. The doctor's self-test runs on the viewer's first project, and
    on the session's app another test's tab may still count as open there (its closing report not
    yet taken): a tab that never confirms rightly fails the check (seen in a clean-clone run)."""
    server = AppServer(data_dir=Path(tmp_path_factory.mktemp("doctor-app")), private_workdirs=True)
    server.start()
    yield server
    server.stop()


def test_the_doctor_passes_against_the_single_process_app(lone_app: AppServer) -> None:
    # The app serves (/healthz) a second before its first delivery sweep makes it ready, and the
    # doctor rightly fails before that: wait for readiness, as a load balancer would.
    wait_until(
        lambda: httpx.get(f"{lone_app.url}/readyz", timeout=5).status_code,
        lambda code: code == 200,
        what="the app ready",
    )
    result = doctor(lone_app.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok      webhook reachable at the public URL" in result.stdout
    assert "doctor: every check passed" in result.stdout


def test_the_doctor_says_when_nothing_answers() -> None:
    result = doctor(f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1 and "nothing answers at" in result.stderr


@pytest.fixture(scope="module")
def services() -> Iterator[tuple[PrivatePostgres, PrivateRedis]]:
    postgres, redis_server = PrivatePostgres(), PrivateRedis()
    postgres.start()
    redis_server.start()
    yield postgres, redis_server
    redis_server.stop()
    postgres.remove()


@pytest.fixture(scope="module")
def scaled(
    tmp_path_factory: pytest.TempPathFactory, services: tuple[PrivatePostgres, PrivateRedis]
) -> Iterator[Cluster]:
    postgres, redis_server = services
    workdir = Path(tmp_path_factory.mktemp("doctor-scaled"))
    with running_cluster(workdir, 2, postgres.url, redis_server.url, {"LOCAL_PROVIDER_DELAY_S": "1.5"}) as cluster:
        yield cluster


def test_the_doctor_passes_on_the_scaled_setup_and_names_a_stopped_redis_or_postgres(
    scaled: Cluster, services: tuple[PrivatePostgres, PrivateRedis]
) -> None:
    postgres, redis_server = services
    result = doctor(scaled.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok      change received by the other workers" in result.stdout

    redis_server.stop()
    result = doctor(scaled.url)
    assert result.returncode == 1
    assert "doctor: readiness: redis: unreachable" in result.stderr

    postgres.stop()
    result = doctor(scaled.url)
    assert result.returncode == 1
    assert "doctor: readiness: database: unreachable" in result.stderr
