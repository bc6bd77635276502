"""SQLite: a deleted project's or node's id is never given to a new one (AUTOINCREMENT).

Without it SQLite hands out the highest id in use plus one, so deleting the newest project
(or node) gave its id to the next: a link or an open tab of the deleted project then named
another, the delivery ledger counted the old project's tabs in the new one, and an undo of
a node's delete found "#5 is there already" in an unrelated node. PostgreSQL's sequences
never go back: nothing to do there.

SQLite cannot add AUTOINCREMENT to a table: each is rebuilt (create, copy, drop, rename) with
its indexes and change-feed triggers read back from the schema as they were. Foreign keys are
off meanwhile (`Database.migrate`), and checked before the commit.
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TABLES = ("project", "node")
#: How SQLAlchemy wrote the key in 0001, and what it becomes.
KEY_COLUMN = "\n\tid INTEGER NOT NULL, "
KEY_CONSTRAINT = "\n\tPRIMARY KEY (id), "
AUTOINCREMENT_KEY = "\n\tid INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    # The rename must not rewrite (and so check) the other tables' triggers that name the table
    # while it is gone; their text names it as it will be again.
    bind.exec_driver_sql("PRAGMA legacy_alter_table=ON")
    for table in TABLES:
        _rebuild(table)
    bind.exec_driver_sql("PRAGMA legacy_alter_table=OFF")
    broken = bind.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"foreign keys broken by the rebuild: {broken[:5]}")


def _rebuild(table: str) -> None:
    bind = op.get_bind()
    schema = "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND type = ? AND sql IS NOT NULL"
    [create] = [row[0] for row in bind.exec_driver_sql(schema, (table, "table"))]
    if "AUTOINCREMENT" in create:
        return
    if KEY_COLUMN not in create or KEY_CONSTRAINT not in create:
        raise RuntimeError(f"unexpected shape of table {table}, not rebuilt:\n{create}")
    attached = [row[0] for kind in ("index", "trigger") for row in bind.exec_driver_sql(schema, (table, kind))]
    rebuilt = create.replace(KEY_COLUMN, AUTOINCREMENT_KEY, 1).replace(KEY_CONSTRAINT, "\n\t", 1)
    rebuilt = rebuilt.replace(f"CREATE TABLE {table} (", f"CREATE TABLE _rebuilt_{table} (", 1)
    bind.exec_driver_sql(rebuilt)
    bind.exec_driver_sql(f"INSERT INTO _rebuilt_{table} SELECT * FROM {table}")
    bind.exec_driver_sql(f"DROP TABLE {table}")  # its indexes and triggers with it
    bind.exec_driver_sql(f"ALTER TABLE _rebuilt_{table} RENAME TO {table}")
    for statement in attached:
        bind.exec_driver_sql(statement)


def downgrade() -> None:
    """Nothing to undo that matters: ids handed out stay unique either way."""
