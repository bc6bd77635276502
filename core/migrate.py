"""Bring the configured database to the newest schema: `python -m core.migrate`.

On PostgreSQL it first creates the database when it does not exist, so a fresh
machine needs no manual `createdb`. Workers also migrate at start (under an
advisory lock); running this once first keeps them from queueing on that lock.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from core.db import Database, normalise_url
from core.settings import get_settings


def ensure_database(url: str) -> None:
    """Create a PostgreSQL database named in `url` if it is missing (no-op for SQLite)."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() != "postgresql" or not parsed.database:
        return
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (parsed.database,)).fetchone()
        if not exists:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(parsed.database)))


def main() -> None:
    url = get_settings().db_url
    ensure_database(url)
    database = Database(url)
    database.migrate()
    database.engine.dispose()
    print(f"database at the newest schema: {normalise_url(url).render_as_string(hide_password=True)}")


if __name__ == "__main__":
    main()
