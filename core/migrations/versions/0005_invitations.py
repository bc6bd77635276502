"""Invitations: sharing a project with an email, whether or not an account uses it.

An invitation's insert, replacement (update) and delete write an `invite` change event
of its project (entity id: the invitation's id) through the generic triggers of 0001,
so every worker pushes the project's member list again; no tab sees the row itself.
"""

from __future__ import annotations

import importlib

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

initial = importlib.import_module("core.migrations.versions.0001_initial")

#: (trigger, event, row: NEW or OLD, op)
TRIGGERS = (
    ("invite_added", "INSERT", "NEW", "upsert"),
    ("invite_changed", "UPDATE", "NEW", "upsert"),
    ("invite_removed", "DELETE", "OLD", "delete"),
)


def upgrade() -> None:
    moment = sa.DateTime(timezone=True)
    op.create_table(
        "invitation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("created_at", moment, nullable=False),
        sa.Column("expires_at", moment, nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "email"),
        sa.CheckConstraint("role IN ('editor', 'viewer')", name="invitation_role"),
    )
    op.create_index("ix_invitation_project_id", "invitation", ["project_id"])
    op.create_index("ix_invitation_token_hash", "invitation", ["token_hash"], unique=True)
    dialect = op.get_bind().dialect.name
    create = initial._create_pg if dialect == "postgresql" else initial._create_sqlite
    for name, event, row, op_ in TRIGGERS:
        create(name, "invitation", event, "", "invite", f"{row}.project_id", f"{row}.id", op_)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, *_ in TRIGGERS:
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON invitation")
            op.execute(f"DROP FUNCTION IF EXISTS canvas_{name}()")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_index("ix_invitation_token_hash", "invitation")
    op.drop_index("ix_invitation_project_id", "invitation")
    op.drop_table("invitation")
