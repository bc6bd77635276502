"""Live progress of unfinished jobs: held in memory, pushed coalesced, never written per tick.

One row per job: its phase (queued here, waiting at the provider, running, storing the
result), its place in the provider's queue and its percent when the provider says, and the
URL of its latest preview. Providers report as often as they like (`report`); the board
pushes a job's row at most every `MIN_PUSH_INTERVAL_S` (4 a second), the first one at
once and then the latest state at the end of each interval, so nothing but the last word
of a burst goes out. The database stays the truth about a job: its status is written by
its transitions as before, and a job's row here is dropped once the change feed says it
ended (`forget`). What a row says is lost with the process, and that is fine: the next
report of the job's provider says it again.

Every worker holds the rows it heard, so a tab that opens mid-job gets them in its
snapshot (`rows`). Rows reach this process's rooms through `subscribe`d handlers (the room
bridge) and other processes through `relay` (PostgreSQL NOTIFY, `core.realtime.progress_relay`),
whose rows come back in through `heard`.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from core.contract import JobStatus, TaskProgress
from core.logs import get_logger
from core.media.previews import PreviewRejected, PreviewStore

log = get_logger("progress")

#: At most 4 pushes per second per job.
MIN_PUSH_INTERVAL_S = 0.25
#: A row nobody touched for this long is dropped: its job ended where this process did not see it.
FORGET_AFTER_S = 600.0
#: Ended jobs remembered, so a report that comes after the end does not bring a row back.
ENDED_KEPT = 2000


class Phase(StrEnum):
    QUEUED = "queued"  # in this app's queue: not handed to the provider yet
    WAITING = "waiting"  # handed over, waiting in the provider's queue
    RUNNING = "running"
    STORING = "storing"  # finished there: the result is being downloaded and stored


_PHASE_OF = {JobStatus.QUEUED: Phase.QUEUED, JobStatus.SUBMITTED: Phase.WAITING, JobStatus.RUNNING: Phase.RUNNING}
_WORKING = (Phase.RUNNING, Phase.STORING)


@dataclass(frozen=True)
class ProgressRow:
    """What every tab is sent about a job's progress (a few hundred bytes), merged by id and version."""

    #: The job's id.
    id: str
    project_id: int
    node_id: int
    phase: str
    #: 1 for next in the provider's queue; None when not queued there or not said.
    position: int | None
    #: 0-100; None when the provider reports no fraction (the bar is indeterminate).
    percent: int | None
    #: The latest preview ("" when none yet), with its version as a query so a browser refetches.
    preview_url: str
    version: int

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ProgressRow:
        """A row from another process; ValueError for anything malformed."""
        try:
            position, percent = data["position"], data["percent"]
            row = cls(
                id=str(data["id"]),
                project_id=int(data["project_id"]),
                node_id=int(data["node_id"]),
                phase=Phase(data["phase"]).value,
                position=None if position is None else int(position),
                percent=None if percent is None else int(percent),
                preview_url=str(data["preview_url"]),
                version=int(data["version"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a progress row: {exc}") from exc
        return row


@dataclass
class _Reported:
    """A job's progress as this process's reports left it, until its next push."""

    phase: Phase
    position: int | None = None
    percent: int | None = None
    preview_url: str = ""
    #: A preview reported since the last push, written to disk only when pushed.
    preview: bytes | None = None
    dirty: bool = True
    flushing: bool = False
    last_push: float = float("-inf")
    timer: asyncio.TimerHandle | None = None

    def merge(self, phase: Phase, live: TaskProgress) -> None:
        """What a report changes. A queue position holds only while waiting, and a percent
        only while working, unless the provider says it again."""
        position = self.position if phase == self.phase == Phase.WAITING else None
        percent = self.percent if phase in _WORKING and self.phase in _WORKING else None
        self.phase = phase
        if live.queue_position is not None:
            position = max(1, int(live.queue_position))
        if live.percent is not None:
            percent = round(min(100.0, max(0.0, live.percent)))
        self.position, self.percent = position, percent
        if live.preview is not None:
            self.preview = live.preview
        self.dirty = True


Handler = Callable[[ProgressRow], Awaitable[None]]
#: (project id, node id) of a job, or None for a job that does not exist (a database read).
Locate = Callable[[str], "tuple[int, int] | None"]


@dataclass
class ProgressBoard:
    previews: PreviewStore
    locate: Locate
    interval_s: float = MIN_PUSH_INTERVAL_S
    clock: Callable[[], float] = time.monotonic
    #: Sends a row this process made to the other processes (None: there are none to tell).
    relay: Handler | None = None
    _handlers: list[Handler] = field(default_factory=list)
    _reported: dict[str, _Reported] = field(default_factory=dict)
    #: The latest row of each job, made here or heard from another process, and when it came.
    _rows: dict[str, ProgressRow] = field(default_factory=dict)
    _touched: dict[str, float] = field(default_factory=dict)
    _places: dict[str, tuple[int, int]] = field(default_factory=dict)
    _ended: collections.OrderedDict[str, None] = field(default_factory=collections.OrderedDict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _last_version: int = 0
    _swept_at: float = float("-inf")

    def subscribe(self, handler: Handler) -> None:
        """`handler` gets every row to show in this process's tabs (its own and those heard)."""
        self._handlers.append(handler)

    # what providers and the pipeline say ------------------------------------
    def report(self, job_id: str, status: JobStatus | Phase, live: TaskProgress | None = None) -> None:
        """Take a provider's word on an unfinished job; pushed within `interval_s`. Event loop only."""
        phase = status if isinstance(status, Phase) else _PHASE_OF.get(status)
        if phase is None or job_id in self._ended:
            return  # an end is the change feed's to tell
        self._sweep()
        state = self._reported.get(job_id)
        if state is None:
            state = self._reported[job_id] = _Reported(phase)
        state.merge(phase, live or TaskProgress())
        self._touched[job_id] = self.clock()
        self._schedule(job_id, state)

    def _schedule(self, job_id: str, state: _Reported) -> None:
        if state.timer is not None or state.flushing or not state.dirty:
            return
        delay = max(0.0, state.last_push + self.interval_s - self.clock())
        state.timer = asyncio.get_running_loop().call_later(delay, self._start_flush, job_id)

    def _start_flush(self, job_id: str) -> None:
        task = asyncio.create_task(self._flush(job_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self, job_id: str) -> None:
        state = self._reported.get(job_id)
        if state is None:
            return
        state.timer, state.flushing, state.dirty = None, True, False
        try:
            row = await self._row(job_id, state)
            state.last_push = self.clock()
            if row is not None and self._reported.get(job_id) is state:
                self._rows[job_id] = row
                await self._tell(row)
                if self.relay is not None:
                    await self._relay(row)
        finally:
            state.flushing = False
        if self._reported.get(job_id) is state:
            self._schedule(job_id, state)  # what came during this push goes out at the interval's end

    async def _row(self, job_id: str, state: _Reported) -> ProgressRow | None:
        place = self._places.get(job_id)
        if place is None:
            place = await asyncio.to_thread(self.locate, job_id)
            if place is None:
                self.forget(job_id)
                return None
            self._places[job_id] = place
        project_id, node_id = place
        self._last_version = max(self._last_version + 1, time.time_ns() // 1_000_000)
        version = self._last_version
        if (preview := state.preview) is not None:
            state.preview = None
            try:
                path = await asyncio.to_thread(self.previews.save, project_id, job_id, preview)
                state.preview_url = f"{path}?v={version}"
            except PreviewRejected as exc:
                extra = {"job_id": job_id, "step": "progress.preview_rejected", "error": str(exc)}
                log.warning("preview dropped", extra=extra)
            if self._reported.get(job_id) is not state:  # the job ended while its preview was written
                self.previews.delete(project_id, job_id)
                return None
        return ProgressRow(
            id=job_id,
            project_id=project_id,
            node_id=node_id,
            phase=state.phase.value,
            position=state.position,
            percent=state.percent,
            preview_url=state.preview_url,
            version=version,
        )

    def place(self, job_id: str, project_id: int, node_id: int) -> None:
        """Where the job is shown, from a caller that has its row: its next push reads nothing."""
        if job_id not in self._ended:
            self._places[job_id] = (project_id, node_id)

    # what other processes say -----------------------------------------------
    async def heard(self, row: ProgressRow) -> None:
        """A row another process made: kept for snapshots and shown to this process's tabs."""
        known = self._rows.get(row.id)
        if row.id in self._ended or (known is not None and known.version >= row.version):
            return
        self._sweep()
        self._rows[row.id] = row
        self._places[row.id] = (row.project_id, row.node_id)
        self._touched[row.id] = self.clock()
        await self._tell(row)

    # what the tabs read ------------------------------------------------------
    def rows(self, project_id: int) -> list[ProgressRow]:
        """The latest row of each of the project's unfinished jobs known here (a snapshot's part)."""
        return [row for row in self._rows.values() if row.project_id == project_id]

    def forget(self, job_id: str) -> None:
        """The job ended: no more rows for it, and its preview is deleted."""
        self._ended[job_id] = None
        while len(self._ended) > ENDED_KEPT:
            self._ended.popitem(last=False)
        state = self._reported.pop(job_id, None)
        if state is not None and state.timer is not None:
            state.timer.cancel()
        self._rows.pop(job_id, None)
        self._touched.pop(job_id, None)
        if (place := self._places.pop(job_id, None)) is not None:
            self.previews.delete(place[0], job_id)

    async def drain(self) -> None:
        """Wait until every reported state went out (tests)."""
        while self._tasks or any(s.timer is not None or s.flushing for s in self._reported.values()):
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
            else:
                await asyncio.sleep(self.interval_s / 5)

    # ---------------------------------------------------------------------------
    async def _tell(self, row: ProgressRow) -> None:
        """To this process's tabs; a failure is logged, the next row says it all again."""
        for handler in self._handlers:
            try:
                await handler(row)
            except Exception:
                log.exception("progress push failed", extra={"job_id": row.id, "step": "progress.push_failed"})

    async def _relay(self, row: ProgressRow) -> None:
        assert self.relay is not None
        try:
            await self.relay(row)
        except Exception:
            log.exception("progress relay failed", extra={"job_id": row.id, "step": "progress.relay_failed"})

    def _sweep(self) -> None:
        """Drop rows nobody touched for `FORGET_AFTER_S`, and preview files as old (at most once a minute)."""
        now = self.clock()
        if now - self._swept_at < 60:
            return
        self._swept_at = now
        for job_id in [j for j, at in self._touched.items() if now - at > FORGET_AFTER_S]:
            self.forget(job_id)
        swept = asyncio.get_running_loop().run_in_executor(
            None, self.previews.delete_older_than, FORGET_AFTER_S, time.time()
        )
        swept.add_done_callback(_log_failure)


def _log_failure(done: asyncio.Future[int]) -> None:
    if (error := done.exception()) is not None:
        log.warning("preview sweep failed: %s", error, extra={"step": "progress.sweep_failed"})


def row_message(row: ProgressRow) -> dict[str, Any]:
    return asdict(row)
