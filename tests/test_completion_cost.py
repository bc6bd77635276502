"""What one completion costs the database: counted, so a change that adds a round trip is seen.

A provider's callback that completes a job (the result downloaded, stored, the job, node and
history written, the run plan moved on) is the app's most frequent write. Its SQL statements
are counted with SQLAlchemy's cursor events, the download replaced by the image's bytes so only
the app's own work is counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event

from core.contract import JobStatus, TaskRef, TaskUpdate, utcnow
from core.jobs import pipeline as pipeline_module
from core.jobs.book import Receipt
from core.notebook import staleness
from core.root import Core
from providers.local_render import render_text_to_image

#: Statements of one completion (2026-12-06: 38 before staleness was judged once and the sequence
#: read once, 35 after; 32 once the project's lock was taken once per transaction, the settled
#: node came from the nodes `lock_nodes` loaded, and an empty unblocking was not sent; 28 once a
#: project without a run plan cost the plan one read, and the sequence was read again only after
#: a write; 2026-12-07: 22 once the timeline steps went in one INSERT per flush, SQLite skipped
#: the row locks' reads, and settling a node's reads stopped flushing the job first; 21 once the
#: `change.published` step was counted before the job's row was written; 17 once the labels took
#: the nodes and the empty plan the transaction had read, the plan's reads stopped flushing the
#: node before its label was set, and unannounced steps waited for commit), reads included.
#: Lower it when a change makes it smaller.
COMPLETION_STATEMENTS = 17


@contextmanager
def counted(core: Core) -> Iterator[list[str]]:
    statements: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement.split(None, 1)[0].upper() + " " + statement[:120])

    event.listen(core.db.engine, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        event.remove(core.db.engine, "before_cursor_execute", seen)


async def test_a_completed_callback_is_a_few_statements_and_judges_staleness_once(
    core: Core, node_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = render_text_to_image("counted", "1:1")

    async def downloaded(*_: object) -> bytes:
        return image

    monkeypatch.setattr(pipeline_module, "fetch_image", downloaded)
    judged = 0
    judge = staleness.judge

    def counting_judge(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal judged
        judged += 1
        return judge(*args, **kwargs)

    monkeypatch.setattr(staleness, "judge", counting_judge)
    job = core.jobs.create(node_id)
    core.jobs.mark_submitted(job.id, TaskRef("task-1"))
    update = TaskUpdate("task-1", JobStatus.COMPLETED, ("https://provider.test/result.png",))
    with counted(core) as statements:
        await core.pipeline.apply(job.id, update, Receipt("completed; signature verified", utcnow(), "delivery-1"))
    assert core.jobs.get(job.id).status == JobStatus.COMPLETED
    assert judged == 1, f"staleness judged {judged} times"
    writes = [s for s in statements if s.split(None, 1)[0] in ("INSERT", "UPDATE", "DELETE")]
    assert len(statements) <= COMPLETION_STATEMENTS, "\n".join(statements)
    assert writes, statements
