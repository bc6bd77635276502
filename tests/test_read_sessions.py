"""Reads on the hot paths never queue behind writers (SQLite's single write lock)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.db import Database
from core.people.access import Role
from core.root import Core
from models.tables import WebhookDelivery


def test_a_read_neither_waits_for_an_open_write_nor_sees_it_before_commit(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'app.db'}")
    database.migrate()
    with database.session() as writing:
        writing.add(WebhookDelivery(fingerprint="f" * 64, job_id="job"))
        writing.flush()  # the write lock is held from here until commit
        with database.read_session() as reading:  # would wait 30 s, then fail, with BEGIN IMMEDIATE
            assert reading.get(WebhookDelivery, "f" * 64) is None
    with database.read_session() as reading:
        assert reading.get(WebhookDelivery, "f" * 64) is not None
    database.engine.dispose()


async def test_an_actions_check_does_not_wait_for_a_write_in_flight(core: Core, node_id: int) -> None:
    """Every click is checked (`Access.may_act`) before it runs: with the write session, a check
    queued for SQLite's write lock behind whatever was being written, up to its 30 s timeout."""
    user = core.accounts.local_user().id
    project_id = core.access.node(user, node_id)
    with core.db.session() as writing:
        writing.add(WebhookDelivery(fingerprint="e" * 64, job_id="job"))
        writing.flush()  # the write lock is held from here until commit
        checked = await asyncio.wait_for(
            asyncio.to_thread(core.access.may_act, user, project_id, node_id=node_id), timeout=5
        )
    assert checked is Role.OWNER
