"""Throwaway PostgreSQL databases for tests: one fresh database per test, dropped after."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy.engine import make_url

#: The maintenance database tests create and drop their databases from.
ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def wants_postgres() -> bool:
    """`TEST_DATABASE=postgres` runs the core's tests against PostgreSQL instead of SQLite."""
    return os.environ.get("TEST_DATABASE", "sqlite").lower() in ("postgres", "postgresql", "pg")


def _admin() -> psycopg.Connection:
    try:
        return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        # A failure, not a skip: `make test` starts PostgreSQL, so its absence is a broken setup.
        pytest.fail(f"PostgreSQL is not reachable at {ADMIN_URL} (scripts/services.sh starts it): {exc}")


@contextmanager
def fresh_database() -> Iterator[str]:
    """Yields the SQLAlchemy URL of a new empty database; drops it (and its sessions) after."""
    name = f"test_{uuid.uuid4().hex}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(ADMIN_URL).set(drivername="postgresql+psycopg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with _admin() as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
