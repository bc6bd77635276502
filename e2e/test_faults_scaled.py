"""The fault suite: the scaled setup (3 workers under supervisord behind HAProxy) under each fault.

Every case reports jobs lost, jobs doubled and the seconds from the end of the fault
until every tab shows what the database holds; the figures go to `faults.json` in the
suite's temporary directory and are printed (README, "Running at scale"). Each case is
bounded: every wait has a deadline, outages have a fixed length.
"""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from e2e.private_services import PrivatePostgres, PrivateRedis
from e2e.scaled import KIE_HMAC, KIE_KEY, FaultRig, Figures, as_json, figures_table
from e2e.server import FakeProviderServer, running_cluster
from e2e.socket_tabs import run
from rxapp.realtime.ghosts import HEARTBEAT_PREFIX, HEARTBEAT_TTL_S
from tests.wait import wait_until

pytestmark = pytest.mark.faults

WORKERS = 3
TABS = 6
#: The provider is down this long: first answering 5xx, then refusing connections.
OUTAGE_S = 30
#: How late the fake provider's callbacks come (an hour-late provider looks the same: the poll wins).
CALLBACK_DELAY_S = 20
#: HAProxy must take a hung worker out within this.
TAKEN_OUT_WITHIN_S = 10
FIGURES: list[Figures] = []
WAITING_FOR_KIE = (
    "SELECT count(*) FROM job WHERE project_id = %s AND status = 'QUEUED' "
    "AND waiting_reason = 'waiting for KIE.ai' AND retry_at IS NOT NULL"
)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultRig]:
    workdir = Path(tmp_path_factory.mktemp("faults"))
    postgres, redis_server = PrivatePostgres(), PrivateRedis()
    kie = FakeProviderServer("kie_server", workdir / "kie.log", KIE_KEY, ("--hmac-key", KIE_HMAC))
    postgres.start()
    redis_server.start()
    kie.start()
    env = {
        "KIE_API_KEY": KIE_KEY,
        "KIE_BASE_URL": kie.url,
        "KIE_WEBHOOK_HMAC_KEY": KIE_HMAC,
        "IMAGE_FETCH_ALLOW_HOSTS": "127.0.0.1",
        # A crashed worker's claims run out quickly here, and polls come often.
        "WORK_LEASE_S": "5",
        "POLL_START_S": "1",
        "POLL_CAP_S": "3",
        # Submit retries as in production (SUBMIT_RETRY_FOR_S, RETRY_BASE_S): the 30 s outage
        # must not fail a job clicked at its start.
    }
    try:
        with running_cluster(workdir, WORKERS, postgres.url, redis_server.url, env) as cluster:
            yield FaultRig(cluster, postgres, redis_server, kie)
    finally:
        kie.stop()
        redis_server.stop()
        postgres.remove()
        report = workdir / "faults.json"
        report.write_text(json.dumps(as_json(FIGURES), indent=2))
        print(f"\nfault suite figures ({report}):\n{figures_table(FIGURES)}")


@pytest.fixture(autouse=True)
def healthy(rig: FaultRig) -> Iterator[None]:
    """Each case starts and ends with the provider answering and every worker in HAProxy."""
    rig.kie.configure(delay_s=1.5)
    wait_until(rig.all_up, what="every worker UP in HAProxy", timeout_s=120)
    yield
    wait_until(rig.all_up, what="every worker UP in HAProxy after the case", timeout_s=120)


def record(figures: Figures) -> Figures:
    FIGURES.append(figures)
    print(f"\n{figures}")
    assert (figures.lost, figures.doubled) == (0, 0), figures
    return figures


def test_postgres_restarted_while_jobs_complete(rig: FaultRig) -> None:
    project = rig.project("postgres restart")
    rig.kie.configure(delay_s=3.0, delivery_pauses_s=[2.0] * 45)

    async def case() -> Figures:
        tabs = await rig.open_tabs(project, TABS)
        try:
            ids = await rig.clicks(tabs, project, 8, "pg")
            await asyncio.to_thread(
                wait_until,
                lambda: len(rig.tasks_of("postgres restart")),
                lambda n: n >= 8,
                what="8 tasks at the provider",
            )
            # Down while the provider finishes them: their callbacks are refused and retried.
            await asyncio.to_thread(rig.postgres.stop)
            await asyncio.sleep(5)  # the outage's length, not a wait for anything
            await asyncio.to_thread(rig.postgres.start)
            converge_s = await rig.converge(tabs, project, 8)
        finally:
            await asyncio.gather(*(tab.close() for tab in tabs))
        return Figures("PostgreSQL restarted", 8, rig.lost(project.id, ids), rig.doubled(project.id), converge_s)

    record(run(case()))


def test_redis_restarted_every_tab_resyncs(rig: FaultRig) -> None:
    project = rig.project("redis restart")
    rig.kie.configure(delay_s=3.0, delivery_pauses_s=[2.0] * 45)

    async def case() -> Figures:
        tabs = await rig.open_tabs(project, TABS)
        try:
            before = await rig.clicks(tabs, project, 6, "redis-before")
            await asyncio.to_thread(rig.redis.stop)  # every tab's Reflex state goes with it
            await asyncio.sleep(3)
            await asyncio.to_thread(rig.redis.start)
            # Every tab can act again: its state is rebuilt from the database.
            after = await rig.clicks(tabs, project, TABS, "redis-after")
            converge_s = await rig.converge(tabs, project, 6 + TABS)
        finally:
            await asyncio.gather(*(tab.close() for tab in tabs))
        ids = before + after
        return Figures("Redis restarted", len(ids), rig.lost(project.id, ids), rig.doubled(project.id), converge_s)

    record(run(case()))


def socket_owners(rig: FaultRig) -> set[str]:
    """The workers (instance ids) named by Reflex's socket records in Redis."""
    client = redis.Redis.from_url(rig.redis.url)
    return {
        pickle.loads(value).instance_id
        for key in client.scan_iter("token_manager_socket_record_*")
        if (value := client.get(key))
    }


def instance_of(rig: FaultRig, pid: int) -> str:
    """The instance id whose heartbeat names a process of the worker's group `pid`."""
    client = redis.Redis.from_url(rig.redis.url)
    for key in client.scan_iter(f"{HEARTBEAT_PREFIX}*"):
        beating = int(client.get(key) or 0)
        if beating and os.getpgid(beating) == pid:
            return key.decode().removeprefix(HEARTBEAT_PREFIX)
    raise AssertionError(f"no heartbeat from worker group {pid}")


def worker_with_tabs(rig: FaultRig) -> tuple[int, str]:
    """A worker (its index and instance id) holding some tab's socket.

    Not a fixed one: HAProxy's round robin does not promise each worker a share of six
    tabs (a worker briefly out under load hands its tabs to the others), and killing a
    worker without tabs would test nothing.
    """
    owners = socket_owners(rig)
    for index in range(WORKERS):
        instance = instance_of(rig, rig.cluster.worker_pid(index))
        if instance in owners:
            return index, instance
    raise AssertionError(f"no worker holds a tab's socket: records name {owners}")


def test_worker_sigkilled_during_a_fan_out_leaves_no_ghosts(rig: FaultRig) -> None:
    project = rig.project("worker killed")
    rig.kie.configure(delay_s=1.0)

    async def case() -> Figures:
        tabs = await rig.open_tabs(project, TABS)
        try:
            first = await rig.clicks(tabs, project, 8, "kill-before")
            # Kill a worker with tabs as soon as results start fanning out.
            await asyncio.to_thread(
                wait_until,
                lambda: any(status == "completed" for tab in tabs for _, status in tab.screen()[0]),
                what="a completed job on some tab",
            )
            victim, dead = await asyncio.to_thread(worker_with_tabs, rig)
            rig.cluster.kill_worker(victim)
            killed_at = time.monotonic()
            second = await rig.clicks(tabs, project, 4, "kill-after")
            converge_s = await rig.converge(tabs, project, 12)
            # Its socket records are gone within seconds (supervisord restarts it meanwhile).
            await asyncio.to_thread(
                wait_until,
                lambda: dead not in socket_owners(rig),
                what=f"no socket record of the dead worker {dead}",
                timeout_s=HEARTBEAT_TTL_S + 10,
            )
            ghost_s = round(time.monotonic() - killed_at, 2)
        finally:
            await asyncio.gather(*(tab.close() for tab in tabs))
        ids = first + second
        lost, doubled = rig.lost(project.id, ids), rig.doubled(project.id)
        return Figures("worker SIGKILLed in a fan-out", len(ids), lost, doubled, converge_s, {"ghosts_gone_s": ghost_s})

    record(run(case()))


def test_worker_hung_is_taken_out_by_haproxy_and_its_tabs_move(rig: FaultRig) -> None:
    project = rig.project("worker hung")

    async def case() -> Figures:
        tabs = await rig.open_tabs(project, TABS)
        victim = await asyncio.to_thread(rig.cluster.worker_pid, 2)
        try:
            os.killpg(victim, signal.SIGSTOP)
            stopped_at = time.monotonic()
            await asyncio.to_thread(
                wait_until,
                lambda: rig.cluster.server_states()["w2"],
                lambda status: status.startswith("DOWN"),
                what="HAProxy's stats to show the hung worker DOWN",
                timeout_s=TAKEN_OUT_WITHIN_S,
            )
            out_s = round(time.monotonic() - stopped_at, 2)
            # Every tab, those that were on the hung worker included, works from another worker.
            ids = await rig.clicks(tabs, project, TABS, "hung")
            converge_s = await rig.converge(tabs, project, TABS)
        finally:
            os.killpg(victim, signal.SIGCONT)
            await asyncio.gather(*(tab.close() for tab in tabs))
        lost, doubled = rig.lost(project.id, ids), rig.doubled(project.id)
        return Figures("worker hung (SIGSTOP)", len(ids), lost, doubled, converge_s, {"taken_out_s": out_s})

    figures = record(run(case()))
    assert figures.extra["taken_out_s"] < TAKEN_OUT_WITHIN_S


def test_provider_down_for_30_s_then_back(rig: FaultRig) -> None:
    project = rig.project("provider down")

    async def case() -> Figures:
        tabs = await rig.open_tabs(project, TABS)
        try:
            await asyncio.to_thread(rig.kie.configure, delay_s=1.5, error_code=500)
            answering_5xx = await rig.clicks(tabs, project, 4, "down-5xx")
            # They wait in `queued`, each row saying for whom (and when its next try comes).
            await asyncio.to_thread(
                wait_until,
                lambda: rig.count(WAITING_FOR_KIE, project.id),
                lambda waiting: waiting == 4,
                what="the 4 jobs waiting for KIE.ai",
                timeout_s=OUTAGE_S / 2,
            )
            await asyncio.sleep(OUTAGE_S / 2)
            await asyncio.to_thread(rig.kie.stop)  # now connections are refused
            refused = await rig.clicks(tabs, project, 4, "down-refused")
            await asyncio.sleep(OUTAGE_S / 2)
            await asyncio.to_thread(rig.kie.start)
            converge_s = await rig.converge(tabs, project, 8)
        finally:
            await asyncio.gather(*(tab.close() for tab in tabs))
        ids = answering_5xx + refused
        return Figures("provider down 30 s", len(ids), rig.lost(project.id, ids), rig.doubled(project.id), converge_s)

    record(run(case()))


def test_callbacks_late_and_duplicated(rig: FaultRig) -> None:
    project = rig.project("late callbacks")
    rig.kie.configure(delay_s=1.0, callback_delay_s=CALLBACK_DELAY_S, duplicate_callbacks=True)

    async def case() -> Figures:
        tabs = await rig.open_tabs(project, TABS)
        try:
            ids = await rig.clicks(tabs, project, 6, "late")
            await rig.converge(tabs, project, 6)  # the fallback poll brings the results first
            await asyncio.to_thread(
                wait_until,
                lambda: rig.callbacks_delivered("late callbacks"),
                lambda delivered: delivered >= 12,
                what="both late callbacks of every job delivered",
                timeout_s=CALLBACK_DELAY_S + 60,
            )
            converge_s = await rig.converge(tabs, project, 6)
        finally:
            await asyncio.gather(*(tab.close() for tab in tabs))
        return Figures(
            "callbacks late and duplicated", len(ids), rig.lost(project.id, ids), rig.doubled(project.id), converge_s
        )

    record(run(case()))


def test_haproxy_reloaded_while_tabs_work(rig: FaultRig) -> None:
    project = rig.project("haproxy reload")
    rig.kie.configure(delay_s=1.0)
    log = rig.cluster.log_dir / "haproxy.log"

    async def case() -> Figures:
        tabs = await rig.open_tabs(project, TABS)
        try:
            before = await rig.clicks(tabs, project, 4, "reload-before")
            exits = log.read_text().count("exited with code")
            await asyncio.to_thread(rig.cluster.reload_balancer)
            # New connections go to the new process at once; open websockets drain from the old one
            # until they end or `hard-stop-after` cuts them, and those tabs reconnect.
            during = await rig.clicks(tabs, project, 4, "reload-during")
            await asyncio.to_thread(
                wait_until,
                lambda: log.read_text().count("exited with code"),
                lambda count: count > exits,
                what="the old HAProxy process to finish draining",
                timeout_s=30,
            )
            after = await rig.clicks(tabs, project, TABS, "reload-after")
            converge_s = await rig.converge(tabs, project, 8 + TABS)
        finally:
            await asyncio.gather(*(tab.close() for tab in tabs))
        ids = before + during + after
        return Figures("HAProxy reloaded", len(ids), rig.lost(project.id, ids), rig.doubled(project.id), converge_s)

    record(run(case()))
