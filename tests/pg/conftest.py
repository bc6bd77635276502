"""Cores on SQLite and on a fresh PostgreSQL database, for the database-level tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from core.db import Database
from core.root import Core
from core.settings import Settings
from tests.postgres import fresh_database


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test using it runs once per dialect."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'app.db'}"
        return
    with fresh_database() as url:
        yield url


def build_core(tmp_path: Path, url: str) -> Core:
    return Core.build(Settings(data_dir=tmp_path, database_url=url, public_base_url="http://testapp"))


@pytest.fixture
async def any_core(tmp_path: Path, any_url: str) -> AsyncIterator[Core]:
    core = build_core(tmp_path, any_url)
    yield core
    await core.aclose()


@pytest.fixture
async def pg_core(tmp_path: Path, pg_url: str) -> AsyncIterator[Core]:
    core = build_core(tmp_path, pg_url)
    yield core
    await core.aclose()


def events(db: Database, project_id: int) -> list[tuple[int, str, str, str]]:
    """The project's change events as (seq, entity, entity id, op), in order."""
    with db.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT seq, entity, entity_id, op FROM changeevent WHERE project_id = :p ORDER BY seq"),
            {"p": project_id},
        )
        return [(int(seq), entity, entity_id, op) for seq, entity, entity_id, op in rows]


def execute(db: Database, sql: str, **params: object) -> None:
    """A statement in its own transaction, as someone in psql or sqlite3 would run it."""
    with db.engine.begin() as connection:
        connection.execute(text(sql), params)
