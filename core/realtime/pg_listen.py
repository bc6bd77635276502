"""PostgreSQL's change notifications, into this process's `ChangeNotifier`.

The change-feed triggers `NOTIFY canvas_changes` on every event, whichever process
(or psql session) wrote it. One `ChangeListener` per backend process LISTENs and
publishes each notice to the in-process notifier, so the bridge pushes changes made
by other workers too. A LISTEN connection can drop, and notifications sent while it
is down are gone; so on every (re)connect the listener first LISTENs, then compares
each project's `last_seq` with what it last saw and publishes those that moved.
Subscribers read the events from the database, so nothing is lost, only delayed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import psycopg

from core.changes import ChangeNotifier
from core.logs import get_logger, log_step
from core.retries import RetryPolicy

log = get_logger("pg_listen")

CHANNEL = "canvas_changes"
#: Progress rows (`core.realtime.progress_relay`): a NOTIFY with no row behind it, on the same connection.
PROGRESS_CHANNEL = "canvas_progress"
#: How the listener's session shows in pg_stat_activity.
APPLICATION_NAME = "canvas-listener"


class ChangeListener:
    """Runs as one asyncio task per process (`run`); reconnects with exponential backoff and jitter."""

    def __init__(
        self,
        conninfo: str,
        notifier: ChangeNotifier,
        *,
        backoff_start_s: float = 0.2,
        backoff_cap_s: float = 30.0,
        on_progress: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.conninfo = conninfo
        self.notifier = notifier
        #: Gets each progress payload (`ProgressRelay.receive`); None: not listened for.
        self.on_progress = on_progress
        self.backoff_start_s = backoff_start_s
        self.backoff_cap_s = backoff_cap_s
        #: "ok" while listening, otherwise why not (readiness reports it).
        self.state = "not started"
        #: How many times a LISTEN connection was established (tests watch reconnects).
        self.connects = 0
        self._seen: dict[int, int] = {}
        self.listening = asyncio.Event()

    async def run(self) -> None:
        """Listen until cancelled; never raises for a lost or refused connection.

        Each pass of the loop is one session and the outage that ends it, with a fresh
        backoff: the session is the first attempt, so its loss is followed by one short
        wait, and only an outage that lasts makes the waits grow (up to `backoff_cap_s`).
        A worker that ran for days thus reconnects as quickly as a fresh one.
        """
        session: psycopg.AsyncConnection | None = None
        try:
            while True:
                backoff = RetryPolicy(attempts=None, base_s=self.backoff_start_s, cap_s=self.backoff_cap_s)
                async for attempt in backoff.attempts_on(self._reconnectable):
                    with attempt:
                        if session is not None:
                            lost, session = session, None
                            await self._listen(lost)
                        session = await self._connect()
        finally:
            if session is not None:
                await session.close()

    def _reconnectable(self, exc: Exception) -> bool:
        if not isinstance(exc, psycopg.Error | OSError):
            return False
        self.state = f"reconnecting after {type(exc).__name__}"
        log_step(log, "listen.disconnected", error=str(exc).strip()[:200])
        return True

    async def _connect(self) -> psycopg.AsyncConnection:
        """A connection that LISTENs, once the changes it missed are published."""
        conn = await psycopg.AsyncConnection.connect(
            self.conninfo,
            autocommit=True,
            application_name=APPLICATION_NAME,
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
        )
        try:
            await conn.execute(f"LISTEN {CHANNEL}")
            if self.on_progress is not None:
                await conn.execute(f"LISTEN {PROGRESS_CHANNEL}")
            # After LISTEN, so a change committed in between is seen by one or the other.
            await self._replay(conn)
        except BaseException:
            await conn.close()
            raise
        self.connects += 1
        self.state = "ok"
        self.listening.set()
        log_step(log, "listen.connected", connects=self.connects)
        return conn

    async def _listen(self, conn: psycopg.AsyncConnection) -> None:
        """Publish notices until the connection is lost (it always ends in an error)."""
        try:
            async with conn:
                async for notice in conn.notifies():
                    if notice.channel == PROGRESS_CHANNEL and self.on_progress is not None:
                        await self.on_progress(notice.payload)
                    else:
                        self._on_payload(notice.payload)
            raise psycopg.OperationalError("the LISTEN connection was closed")
        finally:
            self.listening.clear()

    async def _replay(self, conn: psycopg.AsyncConnection) -> None:
        """Publish every project whose feed moved while we were not listening."""
        cursor = await conn.execute("SELECT id, last_seq FROM project")
        for project_id, last_seq in await cursor.fetchall():
            if last_seq > self._seen.get(project_id, 0):
                self._publish(project_id, last_seq)

    def _on_payload(self, payload: str) -> None:
        try:
            data = json.loads(payload)
            project_id, seq = int(data["project_id"]), int(data["seq"])
            member = int(data["id"]) if data.get("entity") == "member" else 0
            roster = data.get("entity") in ("member", "invite")
        except (ValueError, KeyError, TypeError):
            log_step(log, "listen.bad_payload", payload=payload[:200])
            return
        self._publish(project_id, seq, member, roster=roster)

    def heard(self, project_id: int) -> int:
        """The highest sequence of the project this connection heard (the self-test's evidence)."""
        return self._seen.get(project_id, 0)

    def _publish(self, project_id: int, seq: int, member: int = 0, *, roster: bool = False) -> None:
        self._seen[project_id] = max(seq, self._seen.get(project_id, 0))
        self.notifier.publish(project_id, seq, member, roster=roster)
