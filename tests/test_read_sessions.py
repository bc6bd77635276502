"""Reads on the hot paths never queue behind writers (SQLite's single write lock)."""

from __future__ import annotations

from pathlib import Path

from core.db import Database
from models.tables import WebhookDelivery


def test_a_read_neither_waits_for_an_open_write_nor_sees_it_before_commit(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'app.db'}")
    database.migrate()
    with database.session() as writing:
        writing.add(WebhookDelivery(fingerprint="f" * 64, job_id="job"))
        writing.flush()  # the write lock is held from here until commit
        with database.read_session() as reading:  # would wait 30 s, then fail, with BEGIN IMMEDIATE
            assert reading.get(WebhookDelivery, "f" * 64) is None
    with database.read_session() as reading:
        assert reading.get(WebhookDelivery, "f" * 64) is not None
    database.engine.dispose()
