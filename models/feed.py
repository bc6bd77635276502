"""The change feed: numbered change events per project, and their in-process fan-out.

Writers call `record_change` inside the same transaction as the row change, so an
event exists if and only if the change committed. After commit they `publish` the
project's new sequence number; subscribers (the Reflex bridge) read the events
from the database, so a missed notification costs latency, never data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

from sqlalchemy import update
from sqlmodel import Session, col, select

from models.tables import ChangeEvent, Project

SessionFactory = Callable[[], AbstractContextManager[Session]]


@dataclass(frozen=True)
class Notice:
    project_id: int
    seq: int


def record_change(session: Session, project_id: int, entity: str, entity_id: str | int, op: str = "upsert") -> int:
    """Bump the project's sequence and write the event; returns the new sequence."""
    bump = (
        update(Project)
        .where(col(Project.id) == project_id)
        .values(last_seq=col(Project.last_seq) + 1)
        .returning(col(Project.last_seq))
    )
    # Core-level on the session's connection: the ORM's synchronize step would triple its cost.
    seq: int = session.connection().execute(bump).scalar_one()
    session.add(ChangeEvent(project_id=project_id, seq=seq, entity=entity, entity_id=str(entity_id), op=op))
    return int(seq)


def changes_since(session: Session, project_id: int, after_seq: int) -> list[ChangeEvent]:
    return list(
        session.exec(
            select(ChangeEvent)
            .where(ChangeEvent.project_id == project_id, col(ChangeEvent.seq) > after_seq)
            .order_by(col(ChangeEvent.seq))
        )
    )


class ChangeNotifier:
    """Thread-safe fan-out of `Notice`s to asyncio subscribers in one event loop."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[Notice]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[Notice]]:
        self._loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Notice] = asyncio.Queue()
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    @property
    def listening(self) -> bool:
        """Whether anything (the bridge to the tabs) is subscribed."""
        return bool(self._queues)

    def publish(self, project_id: int, seq: int) -> None:
        """Callable from any thread; a no-op when nobody listens."""
        loop, notice = self._loop, Notice(project_id, seq)
        if loop is None or loop.is_closed():
            return
        for queue in list(self._queues):
            loop.call_soon_threadsafe(queue.put_nowait, notice)


class Transaction:
    """A session plus the change events written in it."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.published: dict[int, int] = {}

    def changed(self, project_id: int, entity: str, entity_id: str | int, op: str = "upsert") -> int:
        seq = record_change(self.session, project_id, entity, entity_id, op)
        self.published[project_id] = seq
        return seq


class ChangeWriter:
    """Runs a unit of work and, only once it committed, notifies subscribers."""

    def __init__(self, session_factory: SessionFactory, notifier: ChangeNotifier) -> None:
        self._session_factory = session_factory
        self.notifier = notifier

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self._session_factory() as session:
            tx = Transaction(session)
            yield tx
        for project_id, seq in tx.published.items():
            self.notifier.publish(project_id, seq)
