"""Shared projects: memberships (in the change feed) and the images each project uses.

A membership's insert, role change and delete write a `member` change event of its
project (entity id: the member's user id), through the same `canvas_record_change` as
every other row on PostgreSQL, so its NOTIFY tells every worker which account gained or
lost the project. `projectmedia` has no events: no tab renders it; it is what makes an
image visible to a project's members, and is filled here from the results and inputs
the projects already hold.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

#: (trigger, event, WHEN condition or "", row: NEW or OLD, op)
TRIGGERS = (
    ("member_added", "INSERT", "", "NEW", "upsert"),
    ("member_changed", "UPDATE", "NEW.role <> OLD.role", "NEW", "upsert"),
    ("member_removed", "DELETE", "", "OLD", "delete"),
)


def upgrade() -> None:
    moment = sa.DateTime(timezone=True)
    op.create_table(
        "membership",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("added_at", moment, nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"]),
        sa.PrimaryKeyConstraint("project_id", "user_id"),
        sa.CheckConstraint("role IN ('editor', 'viewer')", name="membership_role"),
    )
    op.create_index("ix_membership_user_id", "membership", ["user_id"])
    op.create_table(
        "projectmedia",
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"]),
        sa.PrimaryKeyConstraint("name", "project_id"),
    )
    op.create_index("ix_projectmedia_project_id", "projectmedia", ["project_id"])
    dialect = op.get_bind().dialect.name
    for name, event, when, row, op_ in TRIGGERS:
        if dialect == "postgresql":
            _create_pg(name, event, when, row, op_)
        else:
            _create_sqlite(name, event, when, row, op_)
    _fill_project_media()


def _create_pg(name: str, event: str, when: str, row: str, op_: str) -> None:
    op.execute(
        f"""
CREATE FUNCTION canvas_{name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM canvas_record_change({row}.project_id, 'member', ({row}.user_id)::text, '{op_}');
    RETURN NULL;
END $$
"""
    )
    condition = f"WHEN ({when})" if when else ""
    op.execute(
        f"CREATE TRIGGER {name} AFTER {event} ON membership FOR EACH ROW {condition} EXECUTE FUNCTION canvas_{name}()"
    )


def _create_sqlite(name: str, event: str, when: str, row: str, op_: str) -> None:
    condition = f"WHEN {when}" if when else ""
    op.execute(
        f"""
CREATE TRIGGER {name} AFTER {event} ON membership FOR EACH ROW {condition}
BEGIN
    UPDATE project SET last_seq = last_seq + 1 WHERE id = {row}.project_id;
    INSERT INTO changeevent (project_id, seq, entity, entity_id, op, created_at)
    SELECT id, last_seq, 'member', {row}.user_id, '{op_}', strftime('%Y-%m-%d %H:%M:%f', 'now')
    FROM project WHERE id = {row}.project_id;
END
"""
    )


def _fill_project_media() -> None:
    """Every image a project already shows or uses: results (current and earlier) and edit inputs."""
    bind = op.get_bind()
    used: set[tuple[str, int]] = set()
    for query in (
        "SELECT image_path, project_id FROM job WHERE image_path IS NOT NULL",
        "SELECT r.image_path, n.project_id FROM noderesult r JOIN node n ON n.id = r.node_id",
    ):
        used.update((path, project_id) for path, project_id in bind.execute(sa.text(query)))
    for images, project_id in bind.execute(sa.text("SELECT input_images, project_id FROM node")):
        for path in json.loads(images) if isinstance(images, str) else images or []:
            used.add((path, project_id))
    rows = [{"name": path.removeprefix("/media/"), "project_id": p} for path, p in used if path.startswith("/media/")]
    if rows:
        op.bulk_insert(sa.table("projectmedia", sa.column("name"), sa.column("project_id")), rows)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, *_ in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (" ON membership" if dialect == "postgresql" else ""))
        if dialect == "postgresql":
            op.execute(f"DROP FUNCTION IF EXISTS canvas_{name}()")
    op.drop_table("projectmedia")
    op.drop_table("membership")
