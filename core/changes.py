"""The change feed: numbered change events per project, and their in-process fan-out.

The database writes the events itself: triggers (migration 0001) bump the project's
sequence and insert the `ChangeEvent` in the transaction of the row change, so an
event exists if and only if the change committed, whoever wrote it. After commit,
writers in this process `publish` the project's new sequence number; on PostgreSQL
the trigger's NOTIFY reaches every process too (`core.realtime.pg_listen`). Subscribers
(the Reflex bridge) read the events from the database, so a missed or doubled
notification costs latency, never data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import insert
from sqlmodel import Session, SQLModel, col, select

from core.db import WRITES, SessionFactory
from models.tables import ChangeEvent, Project


@dataclass(frozen=True)
class Notice:
    project_id: int
    seq: int
    #: The account whose membership of the project changed (0 for any other change):
    #: its tabs elsewhere must learn it too (their project list, the end of their access).
    member: int = 0
    #: The project's member list changed (a membership, or an invitation, which names no account).
    roster: bool = False


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
        #: Called at once, in the publishing thread, with the account whose membership changed:
        #: what a process remembers of that account's access (`MediaPasses`) ends with it.
        self.on_member: list[Callable[[int], None]] = []

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

    def publish(self, project_id: int, seq: int, member: int = 0, *, roster: bool = False) -> None:
        """Callable from any thread; a no-op when nobody listens."""
        for forget in self.on_member if member else ():
            forget(member)
        loop, notice = self._loop, Notice(project_id, seq, member, roster or bool(member))
        if loop is None or loop.is_closed():
            return
        for queue in list(self._queues):
            loop.call_soon_threadsafe(queue.put_nowait, notice)


class Transaction:
    """A session plus the projects whose feed it moved."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.published: dict[int, int] = {}
        #: (project, account) whose membership changed, with the sequence of that change;
        #: account 0 when only the member list did (an invitation).
        self.members: dict[tuple[int, int], int] = {}
        #: Work for once the transaction committed (e.g. submitting the jobs it queued).
        self.after_commit: list[Callable[[], None]] = []
        self._locked: set[int] = set()
        #: project -> (the connection's `WRITES` count when its sequence was read, that sequence).
        self._seqs: dict[int, tuple[int, int]] = {}
        #: Rows added with `add_row`, per table, not yet inserted.
        self._rows: dict[type[SQLModel], list[dict[str, object]]] = {}
        #: One of them writes a change event: inserted before the sequence is read (`changed`).
        self._rows_move_feed = False
        #: SQLite: the transaction holds the database's one write lock (`BEGIN IMMEDIATE`).
        self.serialised = session.get_bind().dialect.name == "sqlite"

    def add_row(self, table: type[SQLModel], *, moves_feed: bool = False, **values: object) -> None:
        """A row nothing in this transaction reads back (a timeline step): inserted with the
        others of its table in one statement, at commit, or before the sequence is read when
        one of them `moves_feed` (its trigger writes a change event: an announced step).

        Through the session, each would be an INSERT of its own with its id read back: a
        completion writes five timeline steps, in one INSERT.
        """
        self._rows.setdefault(table, []).append(values)
        self._rows_move_feed |= moves_feed

    def flush(self, *, rows: bool = True) -> None:
        """The session's changes, then the rows added (after: they may name a row just added);
        `rows`=False leaves those that do not move the feed for later."""
        self.session.flush()
        if self._rows and (rows or self._rows_move_feed):
            connection = self.session.connection()
            for table, added in self._rows.items():
                connection.execute(insert(table), added)
            self._rows.clear()
            self._rows_move_feed = False

    def lock_project(self, project_id: int) -> None:
        """Take the project's row lock first, before any other row of the project.

        The change trigger takes it anyway, when the change flushes; a transaction that
        had locked a job or a node before then could wait for it while holding what the
        lock's holder needs next, and PostgreSQL would abort one of them (a deadlock). One
        order for all: the project, then its nodes (id order), then its jobs. SQLite's
        `BEGIN IMMEDIATE` already serialises writers; the row lock is PostgreSQL's. Held until
        the transaction ends, so it is taken once.
        """
        if project_id in self._locked or self.serialised:
            return
        self._locked.add(project_id)
        query = select(Project.id).where(col(Project.id) == project_id).with_for_update()
        self.session.connection().execute(query)

    def changed(self, project_id: int, *, member: int = 0, roster: bool = False) -> int:
        """Flush the change (its trigger writes the event) and return the project's sequence.

        The trigger knows what changed; the project is published to this process's
        subscribers after commit.
        """
        self.flush(rows=False)
        connection = self.session.connection()
        writes = connection.info.get(WRITES, 0)
        known = self._seqs.get(project_id)
        if known is not None and known[0] == writes:
            seq = known[1]  # nothing was written since the last read: the sequence is where it was
        else:
            query = select(Project.last_seq).where(col(Project.id) == project_id)
            seq = int(connection.execute(query).scalar_one())
            self._seqs[project_id] = (writes, seq)
        self.published[project_id] = seq
        if member or roster:
            self.members[(project_id, member)] = seq
        return seq


class ChangeWriter:
    """Runs a unit of work and, only once it committed, notifies subscribers."""

    def __init__(self, session_factory: SessionFactory, notifier: ChangeNotifier, reader: SessionFactory) -> None:
        self._session_factory = session_factory
        self.notifier = notifier
        #: Opens a read-only session (`Database.read_session`): no change, nothing to publish.
        self.reading = reader

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self._session_factory() as session:
            tx = Transaction(session)
            yield tx
            tx.flush()  # the rows added with `add_row`, before the session commits
        for project_id, seq in tx.published.items():
            self.notifier.publish(project_id, seq)
        for (project_id, member), seq in tx.members.items():
            self.notifier.publish(project_id, seq, member, roster=True)
        for callback in tx.after_commit:
            callback()
