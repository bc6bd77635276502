"""NOTIFY from the triggers, and the listener that turns it into in-process notices."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest

from core.changes import Notice
from core.contract import NodeKind
from core.realtime.pg_listen import APPLICATION_NAME, CHANNEL, ChangeListener
from core.root import Core
from tests.pg.conftest import execute
from tests.wait import eventually


@pytest.fixture
async def listener(pg_core: Core) -> AsyncIterator[ChangeListener]:
    """The core's listener, running, with a long first backoff so a test can act while it is down."""
    assert pg_core.listener is not None
    pg_core.listener.backoff_start_s = 1.0
    task = asyncio.create_task(pg_core.listener.run())
    await asyncio.wait_for(pg_core.listener.listening.wait(), 5)
    yield pg_core.listener
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
def listen_steps() -> Iterator[list[str]]:
    """The steps the listener logs (`listen.connected`, `listen.disconnected`), as it logs them."""
    logger = logging.getLogger("canvas.pg_listen")
    steps: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: steps.append(getattr(record, "step", ""))  # type: ignore[method-assign]
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield steps
    logger.removeHandler(handler)
    logger.setLevel(level)


async def next_notice(queue: asyncio.Queue[Notice], project_id: int, seq: int) -> Notice:
    """The first notice of the project that reaches `seq` (earlier and doubled ones are allowed)."""
    return await eventually(
        queue.get,
        lambda notice: notice.project_id == project_id and notice.seq >= seq,
        what=f"a notice of project {project_id} at seq {seq}",
    )


async def test_notify_payload_names_the_change_and_never_its_contents(pg_core: Core) -> None:
    project = pg_core.canvas.create_project(pg_core.accounts.local_user().id, "Notify")
    async with await psycopg.AsyncConnection.connect(pg_core.db.libpq_url, autocommit=True) as conn:
        await conn.execute(f"LISTEN {CHANNEL}")
        node = await asyncio.to_thread(pg_core.canvas.add_node, project.id, NodeKind.TEXT_TO_IMAGE)
        await asyncio.to_thread(pg_core.canvas.update_node, node.id, prompt="x" * 5000)
        payloads = []
        async with asyncio.timeout(5):
            async for notice in conn.notifies():
                assert notice.channel == CHANNEL
                payloads.append(notice.payload)
                if len(payloads) == 2:
                    break
    assert [json.loads(p) for p in payloads] == [
        {"project_id": project.id, "seq": 2, "entity": "node", "id": str(node.id), "op": "upsert"},
        {"project_id": project.id, "seq": 3, "entity": "node", "id": str(node.id), "op": "upsert"},
    ]
    assert all(len(p) < 200 for p in payloads)  # far below NOTIFY's 8000 bytes, whatever the row holds


async def test_a_change_made_in_psql_reaches_a_subscriber(pg_core: Core, listener: ChangeListener) -> None:
    project = pg_core.canvas.create_project(pg_core.accounts.local_user().id, "Manual")
    node = pg_core.canvas.add_node(project.id, NodeKind.TEXT_TO_IMAGE)
    pg_core.canvas.update_node(node.id, prompt="a fox")
    job = pg_core.jobs.create(node.id)
    seq = pg_core.canvas.snapshot(project.id).seq
    with pg_core.notifier.subscribe() as queue:
        async with await psycopg.AsyncConnection.connect(pg_core.db.libpq_url, autocommit=True) as raw:
            await raw.execute("UPDATE job SET status = 'FAILED', error = 'stopped by hand' WHERE id = %s", (job.id,))
        notice = await next_notice(queue, project.id, seq + 1)
    assert notice == Notice(project.id, seq + 1)
    changes = pg_core.canvas.changes(project.id, seq)
    assert [(j.id, j.status, j.error) for j in changes.jobs] == [(job.id, "failed", "stopped by hand")]
    assert (await pg_core.readiness())["change_listener"] == "ok"


async def test_listener_reconnects_and_replays_what_it_missed(pg_core: Core, listener: ChangeListener) -> None:
    with pg_core.notifier.subscribe() as queue:
        project = pg_core.canvas.create_project(pg_core.accounts.local_user().id, "Replay")
        quiet = pg_core.canvas.create_project(pg_core.accounts.local_user().id, "Untouched while down")
        for _ in range(2):  # once from this process's writer, once through the listener
            await next_notice(queue, quiet.id, 1)
        drain(queue)
        execute(
            pg_core.db,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = :name AND datname = current_database()",
            name=APPLICATION_NAME,
        )
        await eventually(listener.listening.is_set, lambda listening: not listening, what="the drop")
        assert listener.state.startswith("reconnecting")
        assert (await pg_core.readiness())["change_listener"] != "ok"
        # Committed by another process while nobody listens: its NOTIFY is lost for good.
        execute(pg_core.db, "UPDATE project SET name = 'Renamed while down' WHERE id = :p", p=project.id)
        assert listener.connects == 1
        notice = await next_notice(queue, project.id, 2)
    assert notice == Notice(project.id, 2)
    assert listener.connects == 2 and listener.state == "ok"
    assert all(n.project_id != quiet.id for n in drain(queue))  # only projects that moved are replayed


def drain(queue: asyncio.Queue[Notice]) -> list[Notice]:
    found = []
    while not queue.empty():
        found.append(queue.get_nowait())
    return found


async def test_listener_keeps_trying_while_the_database_is_unreachable(pg_core: Core, listen_steps: list[str]) -> None:
    listener = ChangeListener(
        "postgresql://postgres@127.0.0.1:1/none", pg_core.notifier, backoff_start_s=0.01, backoff_cap_s=0.05
    )
    task = asyncio.create_task(listener.run())
    await eventually(
        lambda: listen_steps.count("listen.disconnected"), lambda tries: tries >= 3, what="three failed attempts"
    )
    assert not task.done() and listener.state.startswith("reconnecting") and listener.connects == 0
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
