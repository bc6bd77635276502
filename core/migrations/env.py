"""Alembic environment: `Database.migrate()` hands over its connection; there is no ini file."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from models import tables  # noqa: F401  (registers the tables, for autogenerate)

#: Arbitrary key of the advisory lock that keeps PostgreSQL workers starting together from
#: migrating at the same time (on SQLite, BEGIN IMMEDIATE already serialises them).
MIGRATION_LOCK = 7_415_502


def run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=SQLModel.metadata, render_as_batch=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        context.run_migrations()


run(context.config.attributes["connection"])
