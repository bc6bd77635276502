"""Migration 0005 on both dialects: invitations, whose every change is in the project's feed
(and, on PostgreSQL, a NOTIFY the listener turns into a member-list notice)."""

from __future__ import annotations

import asyncio

from alembic import command
from sqlalchemy import inspect, text

from core.changes import Notice
from core.db import Database, alembic_config
from core.root import Core
from tests.wait import eventually

NOW = "2026-01-01 00:00:00"


def test_invitation_rows_write_feed_events_and_downgrade_leaves_no_trace(any_url: str) -> None:
    db = Database(any_url)
    with db.engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0004")
        connection.execute(
            text("INSERT INTO \"user\" (id, email, password_hash, created_at) VALUES (1, 'o@example.com', 'x', :t)"),
            {"t": NOW},
        )
        connection.execute(
            text(
                "INSERT INTO project (id, owner_id, name, last_seq, created_at, autorun)"
                " VALUES (1, 1, 'P', 0, :t, false)"
            ),
            {"t": NOW},
        )
    db.migrate()
    with db.engine.begin() as connection:
        run = connection.execute
        run(
            text(
                "INSERT INTO invitation (id, project_id, email, role, token_hash, nonce, created_at, expires_at)"
                " VALUES (7, 1, 'n@example.com', 'viewer', 'h1', 'n1', :t, :t)"
            ),
            {"t": NOW},
        )
        run(text("UPDATE invitation SET token_hash = 'h2', role = 'editor' WHERE id = 7"))
        run(text("DELETE FROM invitation WHERE id = 7"))
        query = "SELECT entity_id, op FROM changeevent WHERE entity = 'invite' ORDER BY seq"
        events = run(text(query)).all()
    assert [tuple(e) for e in events] == [("7", "upsert"), ("7", "upsert"), ("7", "delete")]
    with db.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0004")
        if db.is_postgres:
            left = connection.execute(text("SELECT proname FROM pg_proc WHERE proname LIKE 'canvas_invite%'")).all()
        else:
            left = connection.execute(text("SELECT name FROM sqlite_master WHERE name LIKE 'invite%'")).all()
    assert left == []
    assert "invitation" not in inspect(db.engine).get_table_names()
    db.migrate()  # and up again
    assert "invitation" in inspect(db.engine).get_table_names()
    db.engine.dispose()


async def test_another_workers_invitation_reaches_this_one_as_a_member_list_notice(pg_core: Core) -> None:
    assert pg_core.listener is not None
    owner, _ = pg_core.accounts.sign_up("o@example.com", "long enough")
    project = pg_core.canvas.create_project(owner.id, "Invites").id
    task = asyncio.create_task(pg_core.listener.run())
    try:
        await asyncio.wait_for(pg_core.listener.listening.wait(), 5)
        with pg_core.notifier.subscribe() as queue:
            # Written straight to the database, as another worker would: only the NOTIFY tells this one.
            with pg_core.db.session() as session:
                session.connection().execute(
                    text(
                        "INSERT INTO invitation (project_id, email, role, token_hash, nonce, created_at, expires_at)"
                        " VALUES (:p, 'n@example.com', 'viewer', 'h', 'n', now(), now())"
                    ),
                    {"p": project},
                )
            notice: Notice = await eventually(
                queue.get, lambda n: n.project_id == project, what="the invitation's notice"
            )
        assert (notice.member, notice.roster) == (0, True)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
