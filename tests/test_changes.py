"""`Transaction.changed`: the project's sequence after every change, read again only after a write."""

from __future__ import annotations

from sqlalchemy import event, update
from sqlmodel import col

from core.root import Core
from models.tables import Node


def test_the_sequence_is_read_again_after_any_write_and_only_then(core: Core, node_id: int) -> None:
    reads: list[str] = []

    def seen(conn, cursor, statement, *_):  # type: ignore[no-untyped-def]
        if "last_seq" in statement and statement.lstrip().upper().startswith("SELECT"):
            reads.append(statement)

    event.listen(core.db.engine, "before_cursor_execute", seen)
    try:
        with core.jobs.writer.transaction() as tx:
            node = tx.session.get(Node, node_id)
            assert node is not None
            node.prompt = "an ORM write"
            tx.session.add(node)
            first = tx.changed(node.project_id)
            assert tx.changed(node.project_id) == first  # nothing written since: no read
            assert len(reads) == 1
            # A write outside the session (its trigger moves the sequence) is read again.
            tx.session.connection().execute(update(Node).where(col(Node.id) == node_id).values(prompt="a core write"))
            assert tx.changed(node.project_id) == first + 1
            assert len(reads) == 2
    finally:
        event.remove(core.db.engine, "before_cursor_execute", seen)
