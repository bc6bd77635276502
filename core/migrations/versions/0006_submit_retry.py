"""A queued job waits for its next submit try in the database, not in a sleeping worker.

`retry_at` and `waiting_reason` are shown on the job's row; they change with its `version`,
which the job trigger of 0001 already watches, so no trigger changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE on both dialects: a batch copy would drop SQLite's change-feed triggers.
    op.add_column("job", sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("job", sa.Column("waiting_reason", sa.String(), nullable=False, server_default=""))
    op.add_column("job", sa.Column("submit_failures", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("job", sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for column in ("failing_since", "submit_failures", "waiting_reason", "retry_at"):
        op.drop_column("job", column)
