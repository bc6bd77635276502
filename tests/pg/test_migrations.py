"""The one migration history builds the schema of models/tables.py on both dialects."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from core.db import Database, alembic_config

TABLES = {
    "alembic_version",
    "project",
    "node",
    "noderesult",
    "job",
    "jobstep",
    "changeevent",
    "localtask",
    "user",
    "authsession",
    "mediagrant",
    "webhookdelivery",
    "feedtab",
    "feedchange",
    "feedsighting",
    "membership",
    "projectmedia",
    "planstep",
    "invitation",
    "undostep",
}


def test_migrations_upgrade_an_empty_database_to_the_tables(any_url: str) -> None:
    db = Database(any_url)
    db.migrate()
    db.migrate()  # a second worker starting finds nothing to do
    assert set(inspect(db.engine).get_table_names()) == TABLES
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0009"
        assert compare_metadata(MigrationContext.configure(connection), SQLModel.metadata) == []
    db.engine.dispose()


def test_downgrade_removes_everything(any_url: str) -> None:
    db = Database(any_url)
    db.migrate()
    with db.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    assert set(inspect(db.engine).get_table_names()) == {"alembic_version"}
    db.migrate()  # and builds again, triggers and types included
    assert set(inspect(db.engine).get_table_names()) == TABLES
    db.engine.dispose()


def test_a_database_from_before_migrations_is_refused_with_a_reason(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    SQLModel.metadata.create_all(db.engine)
    with pytest.raises(RuntimeError, match="before migrations"):
        db.migrate()
