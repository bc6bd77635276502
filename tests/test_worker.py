"""The process's background work in one object: started, watched, stopped."""

from __future__ import annotations

import asyncio

from core.contract import JobStatus, utcnow
from core.root import Core
from core.worker import Worker
from tests.wait import eventually, job_reaches


async def test_a_worker_runs_its_loops_says_which_one_died_and_stops_them_all(core: Core) -> None:
    ran = asyncio.Event()

    async def steady() -> None:
        ran.set()
        await asyncio.Event().wait()

    async def broken() -> None:
        raise RuntimeError("lost its connection")

    worker = Worker(core, {"steady": steady, "broken": broken})
    await worker.start()
    await asyncio.wait_for(ran.wait(), 5)
    health = await eventually(worker.health, lambda h: h["broken"] != "ok", what="the broken loop seen as stopped")
    assert health["steady"] == health["jobs"] == health["delivery"] == "ok"
    assert health["broken"] == "stopped: RuntimeError('lost its connection')"
    await worker.stop()
    assert worker.health() == {}


async def test_a_started_worker_submits_what_a_run_plan_queues(core: Core, project_id: int, node_id: int) -> None:
    core.canvas.update_node(node_id, prompt="a plan's job")
    worker = Worker(core)
    await worker.start()
    try:
        assert await asyncio.to_thread(core.plan.run_all_stale, project_id) == 1
        job = await eventually(lambda: core.canvas.snapshot(project_id).jobs, bool, what="the plan's job")
        await job_reaches(core, job[0].id, JobStatus.COMPLETED, timeout_s=20)
    finally:
        await worker.stop()


async def test_a_stopping_worker_gives_back_the_claims_it_holds_and_only_its_own(
    core: Core, project_id: int, node_id: int
) -> None:
    """A poll cancelled by the stop would otherwise hold its job until the lease ran out (60 s)."""
    core.canvas.update_node(node_id, prompt="polled when the stop came")
    mine, theirs = (core.jobs.create(node_id).id for _ in range(2))
    worker = Worker(core)  # not started: no loop of its own takes these jobs meanwhile
    now = utcnow()
    assert core.jobs.claim(mine, core.pipeline.worker_id, now, 60)
    assert core.jobs.claim(theirs, "another-process", now, 60)
    await worker.stop()
    assert (core.jobs.get(mine).claimed_by, core.jobs.get(mine).lease_until) == (None, None)
    assert core.jobs.get(theirs).claimed_by == "another-process"
