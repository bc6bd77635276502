"""Migration 0003 on both dialects: existing images become visible to the members of the projects using them."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

from core.db import Database, alembic_config


def test_images_a_project_already_uses_are_recorded_for_its_members(any_url: str) -> None:
    db = Database(any_url)
    with db.engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0002")
    now = "2026-01-01 00:00:00"
    with db.engine.begin() as connection:
        run = connection.execute
        run(
            text("INSERT INTO \"user\" (id, email, password_hash, created_at) VALUES (1, 'o@example.com', 'x', :t)"),
            {"t": now},
        )
        run(
            text("INSERT INTO project (id, owner_id, name, last_seq, created_at) VALUES (1, 1, 'P', 0, :t)"), {"t": now}
        )
        node = (
            "INSERT INTO node (id, project_id, kind, prompt, model, aspect_ratio, input_images, version, created_at,"
            " updated_at) VALUES (1, 1, 'IMAGE_EDIT', '', 'm', '1:1', :inputs, 1, :t, :t)"
        )
        run(text(node), {"inputs": '["/media/input.png"]', "t": now})
        job = (
            "INSERT INTO job (id, project_id, node_id, provider, model, prompt, aspect_ratio, input_images, status,"
            " version, provider_handle, progress, steps, callback_token, poll_attempts, image_path, created_at,"
            " updated_at, synthetic) VALUES ('j1', 1, 1, 'local', 'm', '', '1:1', '[]', 'COMPLETED', 1, '{}', '', 0,"
            " 't', 0, '/media/result.png', :t, :t, false)"
        )
        run(text(job), {"t": now})
    db.migrate()
    with db.engine.connect() as connection:
        rows = connection.execute(text("SELECT name, project_id FROM projectmedia ORDER BY name")).all()
    assert [tuple(r) for r in rows] == [("input.png", 1), ("result.png", 1)]
    db.engine.dispose()
