"""Progress between workers: one worker's row reaches another's tabs as a NOTIFY, with no table written."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from core.contract import JobStatus, NodeKind, TaskProgress
from core.jobs.progress import ProgressRow
from core.realtime.progress_relay import ProgressRelay
from core.root import Core
from tests.pg.conftest import build_core
from tests.wait import eventually


def written(core: Core, job_id: str, project_id: int) -> tuple[int, int]:
    """What a write for the job would move: its version and its project's change sequence."""
    with core.db.engine.connect() as connection:
        version = connection.execute(text("SELECT version FROM job WHERE id = :j"), {"j": job_id}).scalar_one()
        seq = connection.execute(text("SELECT last_seq FROM project WHERE id = :p"), {"p": project_id}).scalar_one()
        return int(version), int(seq)


async def test_a_row_made_on_one_worker_reaches_the_other_workers_tabs_and_snapshots(
    tmp_path: Path, pg_url: str
) -> None:
    here, there = build_core(tmp_path / "a", pg_url), build_core(tmp_path / "b", pg_url)
    try:
        assert there.listener is not None
        # Both cores live in this one process; the other one must not take these rows for its own.
        there.listener.on_progress = ProgressRelay(there.db.engine, there.progress, "the other worker").receive
        listening = asyncio.create_task(there.listener.run())
        await asyncio.wait_for(there.listener.listening.wait(), 5)
        heard: list[ProgressRow] = []

        async def record(row: ProgressRow) -> None:
            heard.append(row)

        there.progress.subscribe(record)
        project = here.canvas.create_project(here.accounts.local_user().id, "two workers")
        node = here.canvas.add_node(project.id, NodeKind.TEXT_TO_IMAGE)
        here.canvas.update_node(node.id, prompt="a fox")
        job = here.jobs.create(node.id)

        before = written(here, job.id, project.id)
        for percent in (10, 20, 30):
            here.progress.report(job.id, JobStatus.RUNNING, TaskProgress(percent=percent))
            await here.progress.drain()
        await eventually(lambda: heard, lambda rows: rows and rows[-1].percent == 30, what="the last row there")
        assert [row.percent for row in heard] == [10, 20, 30]
        assert there.progress.rows(project.id) == [heard[-1]]
        assert written(here, job.id, project.id) == before  # a NOTIFY, no row
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
    finally:
        await here.aclose()
        await there.aclose()
