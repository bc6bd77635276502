"""Migration 0009: a deleted project's or node's id is never handed out again (SQLite rebuilds
both tables; PostgreSQL's sequences never went back), and the data, the feed and the keys hold."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from core.db import Database, alembic_config

NOW = "2026-01-01 00:00:00"


def _project(connection: Connection, name: str) -> int:
    insert = "INSERT INTO project (owner_id, name, last_seq, created_at, autorun) VALUES (1, :name, 0, :t, false)"
    return connection.execute(text(insert + " RETURNING id"), {"name": name, "t": NOW}).scalar_one()


def _node(connection: Connection, project_id: int, prompt: str) -> int:
    insert = (
        "INSERT INTO node (project_id, kind, prompt, model, aspect_ratio, input_images, version, created_at,"
        " updated_at) VALUES (:project, 'TEXT_TO_IMAGE', :prompt, 'local/sketch', '1:1', '[]', 1, :t, :t)"
    )
    return connection.execute(
        text(insert + " RETURNING id"), {"project": project_id, "prompt": prompt, "t": NOW}
    ).scalar_one()


def test_ids_of_deleted_rows_stay_unused_and_existing_rows_keep_theirs_feed_and_keys(any_url: str) -> None:
    db = Database(any_url)
    with db.engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0008")
        user = "INSERT INTO \"user\" (id, email, password_hash, created_at) VALUES (1, 'o@example.com', 'x', :t)"
        connection.execute(text(user), {"t": NOW})
        kept, newest = _project(connection, "kept"), _project(connection, "newest")
        node = _node(connection, kept, "kept")
    db.migrate()
    with db.engine.begin() as connection:
        run = connection.execute
        assert run(text("SELECT id, prompt FROM node")).all() == [(node, "kept")]
        assert run(text("SELECT id, name FROM project ORDER BY id")).all() == [(kept, "kept"), (newest, "newest")]
        before = run(text("SELECT count(*) FROM changeevent")).scalar_one()
        run(text("UPDATE node SET prompt = 'changed', version = 2 WHERE id = :id"), {"id": node})
        assert run(text("SELECT count(*) FROM changeevent")).scalar_one() == before + 1  # the feed's trigger fires
        run(text("DELETE FROM node WHERE id = :id"), {"id": node})
        run(text("DELETE FROM changeevent WHERE project_id = :id"), {"id": newest})
        run(text("DELETE FROM project WHERE id = :id"), {"id": newest})
        assert _project(connection, "next") > newest
        assert _node(connection, kept, "next") > node
    with pytest.raises(IntegrityError), db.engine.begin() as connection:  # foreign keys are on again
        _node(connection, 10_000, "of no project")
    db.engine.dispose()
