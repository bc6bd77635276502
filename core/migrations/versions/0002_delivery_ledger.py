"""The delivery ledger: which tab showed which change; self-test jobs.

These tables have no change-feed triggers: no tab renders them (a confirmation
becomes a timeline step). No foreign keys either: the ledger is advisory, and must not
hold up deleting a job or a project, whoever does it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    moment = sa.DateTime(timezone=True)
    # Plain ALTER TABLE on both dialects: a batch copy would drop SQLite's change-feed triggers.
    op.add_column("job", sa.Column("synthetic", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "feedtab",
        sa.Column("tab_id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("browser", sa.String(length=120), nullable=False),
        sa.Column("connected_at", moment, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("seen_at", moment, nullable=False),
        sa.Column("heard_at", moment, nullable=False),
        sa.Column("reconnects", sa.Integer(), nullable=False),
        sa.Column("resync_asked_at", moment, nullable=True),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("tab_id"),
    )
    op.create_index("ix_feedtab_project_id", "feedtab", ["project_id"])
    op.create_table(
        "feedchange",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(), nullable=False),
        sa.Column("published_at", moment, nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "seq"),
    )
    op.create_index("ix_feedchange_job_id", "feedchange", ["job_id"])
    op.create_index("ix_feedchange_verdict", "feedchange", ["verdict"])
    op.create_table(
        "feedsighting",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("tab_id", sa.String(length=64), nullable=False),
        sa.Column("delay_ms", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "seq", "tab_id"),
    )


def downgrade() -> None:
    for table in ("feedsighting", "feedchange", "feedtab"):
        op.drop_table(table)
    op.drop_column("job", "synthetic")
