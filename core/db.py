"""Engine, schema migrations and sessions.

SQLite gets WAL, a busy timeout and `BEGIN IMMEDIATE` so the webhook route, the poller
and the UI can write concurrently without `database is locked`. PostgreSQL goes through
psycopg 3; writers that read before they write lock the row (`SELECT ... FOR UPDATE`).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import event, inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, ExceptionContext, make_url
from sqlmodel import Session, SQLModel, create_engine

from core.errors import NotFound

T = TypeVar("T")
#: Opens a session that commits when its block ends without an error.
SessionFactory = Callable[[], AbstractContextManager[Session]]
MIGRATIONS = Path(__file__).parent / "migrations"
#: The execution option of `Database.read_session`'s connections.
READS_ONLY = "canvas_reads_only"
#: `Connection.info` key: how many statements other than a SELECT the connection has run. What
#: changes a project's sequence is such a statement, so `Transaction.changed` reads the sequence
#: again only when this moved (a SELECT never moves it; a BEGIN does, harmlessly).
WRITES = "canvas_writes"
#: This process's name in work claims (leases): host, pid, and a suffix because pids are reused.
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def normalise_url(url: str) -> URL:
    """`postgres://` and `postgresql://` mean psycopg 3 here (SQLAlchemy would pick psycopg2)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def alembic_config(connection: Connection) -> Config:
    """Alembic configured in code: our migrations, run on `connection` (no alembic.ini)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _count_writes(connection: Connection, _cursor: Any, statement: str, *_: Any) -> None:
    if statement.lstrip()[:6].upper() != "SELECT":
        connection.info[WRITES] = connection.info.get(WRITES, 0) + 1


def make_engine(url: str) -> Engine:
    engine = _dialect_engine(normalise_url(url))
    event.listen(engine, "before_cursor_execute", _count_writes)
    return engine


def _dialect_engine(parsed: URL) -> Engine:
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy issue BEGIN itself (below)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        # Take the write lock up front: two read-then-write transactions (a webhook
        # and a poll of the same job) then run one after the other instead of the
        # second failing on a stale snapshot. Reads need no lock: in WAL mode they see
        # the last commit and never wait for a writer (nor make one wait).
        reads_only = connection.get_execution_options().get(READS_ONLY, False)
        connection.exec_driver_sql("BEGIN" if reads_only else "BEGIN IMMEDIATE")

    return engine


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._reader = self.engine.execution_options(**{READS_ONLY: True})
        #: When (monotonic) this process last found the database unreachable, if ever.
        self._lost_at: float | None = None
        event.listen(self.engine, "handle_error", self._note_lost)

    def _note_lost(self, context: ExceptionContext) -> None:
        # A connection that could not be made (refused, restarting) or one that broke mid-query.
        if context.connection is None or context.is_disconnect:
            self._lost_at = time.monotonic()

    def lost_within(self, seconds: float) -> bool:
        """Whether this process found the database unreachable in the last `seconds`."""
        return self._lost_at is not None and time.monotonic() - self._lost_at < seconds

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @property
    def libpq_url(self) -> str:
        """The URL for a raw psycopg connection (the change listener's)."""
        return self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema (tables and the change-feed triggers) to `revision`."""
        with self.engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                # A migration that rebuilds a table (0009) drops it while others point at it: SQLite's
                # own procedure for that turns foreign keys off, which it ignores inside a transaction.
                connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
            try:
                with connection.begin():
                    tables = inspect(connection).get_table_names()
                    if "project" in tables and "alembic_version" not in tables:
                        raise RuntimeError(
                            f"{self.engine.url.render_as_string()} was created before migrations existed and has "
                            "no change-feed triggers: move it away (or delete it) and start again"
                        )
                    command.upgrade(alembic_config(connection), revision)
            finally:
                if sqlite:
                    connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]

    def session(self) -> AbstractContextManager[Session]:
        """A session whose work commits on success and rolls back on error."""
        return _unit_of_work(self.engine)

    def read_session(self) -> AbstractContextManager[Session]:
        """A session that only reads: on SQLite it does not queue for the write lock.

        For reads on hot paths (the push to the tabs, a webhook's checks) that would
        otherwise wait behind every write in flight. Never write in it.
        """
        return _unit_of_work(self._reader)


@contextmanager
def _unit_of_work(bind: Engine) -> Iterator[Session]:
    with Session(bind, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def get_or_404(session: Session, table: type[T], key: object, *, lock: bool = False) -> T:
    """`lock` for a read-modify-write: PostgreSQL then holds the row until commit
    (SQLite's `BEGIN IMMEDIATE` serialises writers anyway)."""
    row = session.get(table, key, with_for_update=lock)
    if row is None:
        raise NotFound(f"{table.__name__} {key} not found")
    return row


def insert_or_ignore(session: Session, table: type[SQLModel], **values: object) -> bool:
    """Insert a row unless one with its key exists, a concurrent writer's included; True when inserted.

    `ON CONFLICT DO NOTHING` rather than catching the error: on PostgreSQL a failed
    insert aborts the whole transaction, and these rows are written inside bigger ones.
    """
    connection = session.connection()
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return bool(connection.execute(dialect.insert(table).values(**values).on_conflict_do_nothing()).rowcount)
