"""The reactive notebook: node references, staleness, run plans, node order, autorun.

New node columns (`input_nodes`, `result_job_id`, `freshness`, `position`) ride on the
node triggers of 0001, which fire on every node update. `project.autorun` gets a trigger
of its own, like a rename: the project's other updates (its sequence) are no events.
`job.input_results` is not in the feed (tabs never see it). `planstep` has no trigger:
a plan's every move rewrites its nodes' `freshness` in the same transaction, and that is
what tabs show.
"""

from __future__ import annotations

import importlib

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

initial = importlib.import_module("core.migrations.versions.0001_initial")


def _autorun_trigger(dialect: str) -> tuple[str, str, str, str, str, str, str, str]:
    changed = initial._differs(("autorun",), dialect)
    return ("project_autorun", "project", "UPDATE", changed, "project", "NEW.id", "NEW.id", "upsert")


def upgrade() -> None:
    # Plain ALTER TABLE on both dialects: a batch copy would drop SQLite's change-feed triggers.
    op.add_column("project", sa.Column("autorun", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("node", sa.Column("input_nodes", sa.JSON(), nullable=False, server_default="[]"))
    op.add_column("node", sa.Column("result_job_id", sa.String(), nullable=True))
    op.add_column("node", sa.Column("freshness", sa.String(), nullable=False, server_default=""))
    op.add_column("node", sa.Column("position", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("job", sa.Column("input_results", sa.JSON(), nullable=False, server_default="{}"))
    # Existing canvases keep their order, and their current results their jobs.
    op.execute("UPDATE node SET position = id")
    op.execute(
        "UPDATE node SET result_job_id = (SELECT r.job_id FROM noderesult r WHERE r.node_id = node.id "
        "AND r.image_path = node.image_path ORDER BY r.id DESC LIMIT 1)"
    )
    op.create_table(
        "planstep",
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("job_id", sa.String(), nullable=True),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("node_id"),
    )
    op.create_index("ix_planstep_project_id", "planstep", ["project_id"])
    op.create_index("ix_planstep_job_id", "planstep", ["job_id"])
    dialect = op.get_bind().dialect.name
    (initial._create_pg if dialect == "postgresql" else initial._create_sqlite)(*_autorun_trigger(dialect))


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS project_autorun ON project")
        op.execute("DROP FUNCTION IF EXISTS canvas_project_autorun()")
    else:
        op.execute("DROP TRIGGER IF EXISTS project_autorun")
    op.drop_table("planstep")
    op.drop_column("job", "input_results")
    for column in ("position", "freshness", "result_job_id", "input_nodes"):
        op.drop_column("node", column)
    op.drop_column("project", "autorun")
