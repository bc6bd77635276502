"""Batches and seeds: `Images` and `Seed` on a node, each job's seed and the batch it belongs to.

New node columns ride on the node trigger of 0001 (every update); a job's seed and batch are
written with its insert, which that trigger announces.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE on both dialects: a batch copy would drop SQLite's change-feed triggers.
    op.add_column("node", sa.Column("batch_size", sa.Integer(), nullable=False, server_default="1"))
    op.add_column("node", sa.Column("seed", sa.String(), nullable=False, server_default=""))
    op.add_column("node", sa.Column("latest_result", sa.String(), nullable=True))
    op.add_column("job", sa.Column("seed", sa.Integer(), nullable=True))  # at most MAX_SEED: 32 bits
    op.add_column("job", sa.Column("batch_of", sa.String(), nullable=True))


def downgrade() -> None:
    pairs = (("job", "batch_of"), ("job", "seed"), ("node", "latest_result"), ("node", "seed"), ("node", "batch_size"))
    for table, column in pairs:
        op.drop_column(table, column)
