"""Claimed background work: concurrent workers never take one job twice; dead workers' leases expire."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.contract import NodeKind, TaskRef
from core.root import Core
from models.tables import utcnow
from tests.pg.conftest import execute

WORKERS = 4


def due_jobs(core: Core, count: int) -> list[str]:
    project = core.canvas.create_project(core.accounts.local_user().id, "Claims")
    node = core.canvas.add_node(project.id, NodeKind.TEXT_TO_IMAGE)
    core.canvas.update_node(node.id, prompt="a fox")
    ids = []
    for i in range(count):
        job = core.jobs.create(node.id)
        core.jobs.mark_submitted(job.id, TaskRef(f"t{i}"), utcnow() - timedelta(seconds=1))
        ids.append(job.id)
    return ids


def claim_concurrently(core: Core, limit: int) -> list[list[str]]:
    """Four workers, each with its own sessions, claim until nothing is left; returns each one's jobs."""
    start = threading.Barrier(WORKERS)
    claimed: list[list[str]] = [[] for _ in range(WORKERS)]
    now = utcnow()

    def worker(index: int) -> None:
        start.wait()
        while batch := core.jobs.claim_due_polls(f"worker-{index}", now, lease_s=60, limit=limit):
            claimed[index].extend(job.id for job in batch)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return claimed


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(jobs=st.integers(min_value=0, max_value=30), limit=st.integers(min_value=1, max_value=8))
def test_concurrent_workers_never_claim_one_job_twice(pg_core: Core, jobs: int, limit: int) -> None:
    execute(pg_core.db, "UPDATE job SET status = 'COMPLETED'")  # earlier examples' jobs are done
    ids = due_jobs(pg_core, jobs)
    claimed = claim_concurrently(pg_core, limit)
    counts = Counter(job_id for batch in claimed for job_id in batch)
    assert sorted(counts) == sorted(ids)
    assert set(counts.values()) <= {1}


def test_concurrent_claims_on_sqlite_too(any_core: Core) -> None:
    ids = due_jobs(any_core, 20)
    claimed = claim_concurrently(any_core, 3)
    assert sorted(job_id for batch in claimed for job_id in batch) == sorted(ids)


def test_an_expired_lease_can_be_claimed_again(any_core: Core) -> None:
    [job_id] = due_jobs(any_core, 1)
    now = utcnow()
    assert [j.id for j in any_core.jobs.claim_due_polls("dies", now, lease_s=30)] == [job_id]
    assert any_core.jobs.claim_due_polls("other", now + timedelta(seconds=29), lease_s=30) == []
    assert not any_core.jobs.claim(job_id, "other", now + timedelta(seconds=29), 30)
    later = now + timedelta(seconds=31)
    assert [j.id for j in any_core.jobs.claim_due_polls("other", later, lease_s=30)] == [job_id]
    assert not any_core.jobs.claim(job_id, "dies", later, 30)
    any_core.jobs.release(job_id, "dies")  # too late: the other worker's claim stands
    assert any_core.jobs.get(job_id).claimed_by == "other"
    any_core.jobs.release(job_id, "other")
    assert any_core.jobs.claim(job_id, "third", later, 30)


def test_a_round_with_nothing_due_opens_no_write_transaction(any_core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every worker looks every 0.5 s: on SQLite a write transaction each time took the one write lock."""
    [job_id] = due_jobs(any_core, 1)
    writer = any_core.jobs.writer
    opened, transaction = [], writer.transaction

    def counted():  # type: ignore[no-untyped-def]
        opened.append(1)
        return transaction()

    monkeypatch.setattr(writer, "transaction", counted)
    now = utcnow()
    assert [j.id for j in any_core.jobs.claim_due_polls("w", now, lease_s=30)] == [job_id]
    assert len(opened) == 1
    assert any_core.jobs.claim_due_polls("w", now, lease_s=30) == []  # leased now: nothing due
    assert len(opened) == 1
