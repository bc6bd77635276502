"""Progress rows between worker processes: PostgreSQL NOTIFY, and no table.

A change travels between workers as a row written by its transaction plus a NOTIFY
(`core.realtime.pg_listen`); a progress tick must not cost a row, so it travels as the NOTIFY
alone: the row itself is the payload (a few hundred bytes; PostgreSQL takes up to
8,000). The process that made it sends it (`send`); every process's change listener,
already LISTENing on its own connection, LISTENs on this channel too and hands each
payload to `receive`, which skips the sender's own rows (its tabs had them already).
A notification lost while a listener reconnects is not replayed: the job's next tick,
a quarter of a second later, says everything again.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict

from sqlalchemy import text
from sqlalchemy.engine import Engine

from core.jobs.progress import ProgressBoard, ProgressRow
from core.logs import get_logger, log_step
from core.realtime.pg_listen import PROGRESS_CHANNEL

log = get_logger("progress_relay")

#: PostgreSQL refuses a longer NOTIFY payload.
MAX_PAYLOAD_BYTES = 8000


class ProgressRelay:
    def __init__(self, engine: Engine, board: ProgressBoard, origin: str) -> None:
        self.engine = engine
        self.board = board
        #: This process's name (`core.db.WORKER_ID`): its own rows come back, and are skipped.
        self.origin = origin

    def payload(self, row: ProgressRow) -> str:
        return json.dumps({"origin": self.origin, **asdict(row)}, separators=(",", ":"))

    async def send(self, row: ProgressRow) -> None:
        payload = self.payload(row)
        if len(payload.encode()) > MAX_PAYLOAD_BYTES:
            log_step(log, "progress.too_large", job_id=row.id, bytes=len(payload.encode()))
            return
        await asyncio.to_thread(self._notify, payload)

    def _notify(self, payload: str) -> None:
        with self.engine.connect() as connection:
            notify = text("SELECT pg_notify(:channel, :payload)")
            connection.execute(notify, {"channel": PROGRESS_CHANNEL, "payload": payload})
            connection.commit()

    async def receive(self, payload: str) -> None:
        """A row another process sent; malformed payloads are logged and dropped."""
        try:
            data = json.loads(payload)
            if data.get("origin") == self.origin:
                return
            row = ProgressRow.parse(data)
        except (ValueError, AttributeError) as exc:
            log_step(log, "progress.bad_payload", payload=payload[:200], error=str(exc))
            return
        await self.board.heard(row)
