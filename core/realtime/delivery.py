"""The delivery ledger: which tab showed which change on its screen, and which tab fell behind.

What the server pushed is not what a browser showed: a tab whose socket silently
died, that dropped a delta, or that sits behind a buffering proxy looks delivered.
So each tab reports, in batches, the highest sequence number it has applied and
when (`confirm`). The ledger keeps, per project, the tabs (`FeedTab`), the job
changes waiting for them (`FeedChange`, written with the change itself by
`core.jobs.book`), and who showed which (`FeedSighting`); it writes one `feed.seen` line
into the job's timeline per change: `seq 6 seen by 2 of 2 tabs, slowest 40 ms`, or,
after `late_after_s`, who is missing (that line, and the one when the late tab catches
up, are announced, so open timelines reload; a line that every tab saw is not: it would
cost a push to every tab per change).

Why in the database: in the scaled setup a project's tabs and their reports land on
any worker. Why inbound only: confirmations are small HTTP posts from the tabs,
and resolving them is per change, never per tab on the push path; a push never
waits for them.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlmodel import col, select

from core.changes import ChangeWriter, Transaction
from core.jobs.book import write_step
from core.logs import get_logger, log_step
from models.tables import ChangeEvent, FeedChange, FeedSighting, FeedTab, Job, Project, utcnow

log = get_logger("delivery")

#: A change not shown by every tab this long after it was published names the late tabs.
LATE_AFTER_S = 3.0
#: A tab that has not reported for this long is gone (closed without a word, or offline).
TAB_GONE_S = 20.0
#: A tab still behind this long after it was told to resync is told again.
RESYNC_AGAIN_S = 10.0
#: Reports arriving this close together are confirmed in one transaction.
INBOX_WINDOW_S = 0.3
#: Readiness fails when the sweep (every second) has been quiet this long.
SWEEP_QUIET_S = 10.0
#: Ledger rows older than this are forgotten.
KEEP_S = 15 * 60.0


@dataclass(frozen=True)
class TabReport:
    """One tab's confirmation: the highest change it has on screen, and when (server clock)."""

    project_id: int
    tab_id: str
    seq: int
    applied_at: datetime
    browser: str
    #: The tab is closing (its last report, sent on `pagehide`).
    closed: bool = False
    #: How many times the tab's websocket connected again since the page loaded.
    reconnects: int = 0


class DeliveryLedger:
    def __init__(self, writer: ChangeWriter, late_after_s: float = LATE_AFTER_S) -> None:
        self.writer = writer
        self.late_after_s = late_after_s
        #: When `sweep` last finished (monotonic), for readiness: late tabs are named only while it runs.
        self._swept_at: float | None = None

    def health(self) -> str:
        """For readiness: "ok" while the sweep runs (the web layer calls it every second), else why not."""
        if self._swept_at is None:
            return "the sweep has not run yet"
        quiet = time.monotonic() - self._swept_at
        return "ok" if quiet < SWEEP_QUIET_S else f"no sweep for {quiet:.0f} s"

    def confirm(self, reports: Sequence[TabReport], now: datetime | None = None) -> set[str]:
        """Record a batch of tab reports; returns the tabs that should resync (they stayed behind).

        The web layer checks beforehand that each report's viewer owns its project.
        """
        now = now or utcnow()
        resync: set[str] = set()
        moved: set[int] = set()  # a heartbeat that changes nothing resolves nothing
        with self.writer.transaction() as tx:
            for report in reports:
                behind, changed = self._record(tx, report, now)
                if behind:
                    resync.add(report.tab_id)
                if changed:
                    moved.add(report.project_id)
        for project_id in moved:
            self.resolve(project_id, now)
        return resync

    def _record(self, tx: Transaction, report: TabReport, now: datetime) -> tuple[bool, bool]:
        """Update one tab and add its sightings: (it is behind and should resync, the ledger changed)."""
        s = tx.session
        changed = report.closed
        tab = s.get(FeedTab, report.tab_id, with_for_update=True)
        if report.closed and (tab is None or tab.project_id != report.project_id):
            return False, False  # the goodbye of a tab we do not know there (it may arrive late)
        if tab is None or tab.project_id != report.project_id:
            # The web layer checked access before the inbox held the report for a moment: the
            # project may have been deleted since, and a tab of it would count wherever its id
            # went next. Locked shared: a delete in flight finishes first (PostgreSQL).
            if s.get(Project, report.project_id, with_for_update={"read": True}) is None:
                return False, False
            # A tab id is the page's own random name; a tab that moved to another project starts afresh there.
            tab = tab or FeedTab(tab_id=report.tab_id, project_id=report.project_id)
            tab.project_id, tab.browser, tab.connected_at = report.project_id, report.browser[:120], now
            tab.seq, tab.seen_at, tab.resync_asked_at, tab.closed = report.seq, report.applied_at, None, False
            _log_tab("tab.connected", tab, browser=tab.browser)
            changed = True
        elif report.seq > tab.seq:
            changed = True
            self._sight(tx, tab, report)
            was = tab.seq
            tab.seq, tab.seen_at = report.seq, report.applied_at
            if tab.resync_asked_at is not None and self._missed_since(tx, tab, now) is None:
                _log_tab("tab.resynced", tab, was=was)
                tab.resync_asked_at = None
        if report.reconnects > tab.reconnects:
            tab.reconnects = report.reconnects
            _log_tab("tab.reconnected", tab, reconnects=tab.reconnects)
        tab.heard_at = now
        tab.closed = report.closed
        if report.closed:
            _log_tab("tab.closed", tab)
        s.add(tab)
        return not tab.closed and self._should_resync(tx, tab, now), changed

    def _sight(self, tx: Transaction, tab: FeedTab, report: TabReport) -> None:
        """The job changes this report covers were shown by this tab at `applied_at`."""
        waiting = tx.session.exec(
            select(FeedChange.seq, FeedChange.published_at).where(
                FeedChange.project_id == tab.project_id,
                col(FeedChange.seq) > tab.seq,
                col(FeedChange.seq) <= report.seq,
            )
        )
        for seq, published_at in waiting:
            delay = max(0, round((report.applied_at - published_at).total_seconds() * 1000))
            tx.session.merge(FeedSighting(project_id=tab.project_id, seq=seq, tab_id=tab.tab_id, delay_ms=delay))

    def _missed_since(self, tx: Transaction, tab: FeedTab, now: datetime) -> datetime | None:
        """When the first change the tab has not shown was published, if that is over `late_after_s` ago."""
        missed = tx.session.exec(
            select(ChangeEvent.created_at).where(
                ChangeEvent.project_id == tab.project_id, ChangeEvent.seq == tab.seq + 1
            )
        ).first()
        if missed is None or _aware(missed) > now - timedelta(seconds=self.late_after_s):
            return None
        return _aware(missed)

    def _should_resync(self, tx: Transaction, tab: FeedTab, now: datetime) -> bool:
        """Behind (see `_missed_since`), and not told so in the last `RESYNC_AGAIN_S`."""
        missed = self._missed_since(tx, tab, now)
        if missed is None:
            return False
        asked = tab.resync_asked_at
        if asked is not None and _aware(asked) > now - timedelta(seconds=RESYNC_AGAIN_S):
            return False
        tab.resync_asked_at = now
        _log_tab("tab.resync_asked", tab, browser=tab.browser, behind_ms=round((now - missed).total_seconds() * 1000))
        return True

    def resolve(self, project_id: int, now: datetime | None = None) -> None:
        """Write the timeline line of every waiting change of the project whose outcome is known."""
        now = now or utcnow()
        with self.writer.transaction() as tx:
            s = tx.session
            tabs = _live_tabs(tx, project_id, now)
            if not tabs:
                # Nobody watches (a script, a burst of webhooks): settle every overdue change in one statement.
                s.connection().execute(
                    update(FeedChange)
                    .where(
                        col(FeedChange.project_id) == project_id,
                        col(FeedChange.verdict) == "",
                        col(FeedChange.published_at) < now - timedelta(seconds=self.late_after_s),
                    )
                    .values(verdict="unwatched")
                )
                return
            waiting = list(
                s.exec(
                    select(FeedChange)
                    .where(FeedChange.project_id == project_id, col(FeedChange.verdict).in_(["", "late"]))
                    .order_by(col(FeedChange.seq))
                )
            )
            if not waiting:
                return
            sightings: dict[int, dict[str, int]] = {}
            for row in s.exec(
                select(FeedSighting).where(
                    FeedSighting.project_id == project_id, col(FeedSighting.seq).in_([c.seq for c in waiting])
                )
            ):
                sightings.setdefault(row.seq, {})[row.tab_id] = row.delay_ms
            for change in waiting:
                self._settle(tx, change, tabs, sightings.get(change.seq, {}), now)

    def _settle(
        self, tx: Transaction, change: FeedChange, tabs: list[FeedTab], seen: dict[str, int], now: datetime
    ) -> None:
        expected = [t for t in tabs if _aware(t.connected_at) <= _aware(change.published_at)]
        shown = {t.tab_id: seen[t.tab_id] for t in expected if t.tab_id in seen}
        overdue = now - _aware(change.published_at) > timedelta(seconds=self.late_after_s)
        if expected and len(shown) == len(expected):
            verdict = "seen"
        elif not expected and overdue:
            verdict = "unwatched"
        elif overdue and change.verdict == "":
            verdict = "late"
        else:
            return
        # Several workers resolve the same project: the one whose update lands writes the line.
        won = tx.session.connection().execute(
            update(FeedChange)
            .where(
                col(FeedChange.project_id) == change.project_id,
                col(FeedChange.seq) == change.seq,
                col(FeedChange.verdict) == change.verdict,
            )
            .values(verdict=verdict)
        )
        if not won.rowcount or verdict == "unwatched":
            return
        late = [t for t in expected if t.tab_id not in shown]
        line = seen_line(change.seq, len(shown), len(expected), max(shown.values(), default=None), late)
        tx.lock_project(change.project_id)  # before the job: see Transaction.lock_project
        job = tx.session.get(Job, change.job_id, with_for_update=True)
        if job is None:
            return
        # Only news is announced (a late tab, or the late tab catching up): announcing every line would
        # add a push to every tab per change, which is what confirmations must not cost.
        news = verdict == "late" or change.verdict == "late"
        write_step(tx, job, "feed.seen", line, announced=news)
        if news:
            tx.changed(job.project_id)
        log_step(
            log,
            "feed.seen",
            job_id=job.id,
            project_id=job.project_id,
            seq=change.seq,
            seen=len(shown),
            tabs=len(expected),
            slowest_ms=max(shown.values(), default=None),
        )
        for tab in late:
            _log_tab("tab.behind", tab, job_id=job.id, browser=tab.browser, missed=change.seq)

    def sweep(self, now: datetime | None = None) -> None:
        """Settle changes whose deadline passed with no report coming in, and forget old rows."""
        now = now or utcnow()
        deadline = now - timedelta(seconds=self.late_after_s)
        with self.writer.transaction() as tx:
            projects = set(
                tx.session.exec(
                    select(FeedChange.project_id).where(
                        FeedChange.verdict == "", col(FeedChange.published_at) < deadline
                    )
                )
            )
        for project_id in projects:
            self.resolve(project_id, now)
        self._swept_at = time.monotonic()

    def forget(self, now: datetime | None = None) -> None:
        """Drop ledger rows older than `KEEP_S` (their timeline lines stay)."""
        horizon = (now or utcnow()) - timedelta(seconds=KEEP_S)
        with self.writer.transaction() as tx:
            c = tx.session.connection()
            old = select(FeedChange.project_id, FeedChange.seq).where(col(FeedChange.published_at) < horizon)
            for project_id, seq in list(c.execute(old)):
                c.execute(
                    delete(FeedSighting).where(col(FeedSighting.project_id) == project_id, col(FeedSighting.seq) == seq)
                )
            c.execute(delete(FeedChange).where(col(FeedChange.published_at) < horizon))
            c.execute(delete(FeedTab).where(col(FeedTab.heard_at) < horizon))

    def tabs(self, project_id: int, now: datetime | None = None) -> list[FeedTab]:
        """The project's open tabs (for the self-test)."""
        with self.writer.transaction() as tx:
            return _live_tabs(tx, project_id, now or utcnow())

    def fastest_sighting(self, project_id: int, seq: int) -> int | None:
        """How soon (ms) the first tab showed the change, if any did."""
        with self.writer.transaction() as tx:
            delays = tx.session.exec(
                select(FeedSighting.delay_ms).where(FeedSighting.project_id == project_id, FeedSighting.seq == seq)
            )
            return min(delays, default=None)

    def verdict(self, project_id: int, seq: int) -> str:
        with self.writer.transaction() as tx:
            change = tx.session.get(FeedChange, (project_id, seq))
            return change.verdict if change is not None else ""


class ConfirmationInbox:
    """Coalesces the reports arriving within `window_s` into one `confirm`.

    Every tab reports within a second of each change; one transaction and one resolve per
    project for all of them, instead of one per tab, keeps the database (SQLite's single
    writer above all) free for the changes themselves.
    """

    def __init__(self, ledger: DeliveryLedger, window_s: float = INBOX_WINDOW_S) -> None:
        self.ledger = ledger
        self.window_s = window_s
        self._pending: list[tuple[Sequence[TabReport], asyncio.Future[set[str]]]] = []
        self._flush: asyncio.Task[None] | None = None

    async def confirm(self, reports: Sequence[TabReport]) -> set[str]:
        """Which of these reports' tabs should resync (see `DeliveryLedger.confirm`)."""
        answer: asyncio.Future[set[str]] = asyncio.get_running_loop().create_future()
        self._pending.append((reports, answer))
        if self._flush is None:
            self._flush = asyncio.create_task(self._flush_soon())
        return await answer

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self.window_s)
        # Reports arriving from here on start the next batch.
        batch, self._pending, self._flush = self._pending, [], None
        try:
            resync = await asyncio.to_thread(self.ledger.confirm, [r for reports, _ in batch for r in reports])
        except Exception as exc:  # every waiting request gets the error (a 500), none hangs
            for _, answer in batch:
                answer.set_exception(exc)
            return
        for reports, answer in batch:
            answer.set_result({r.tab_id for r in reports} & resync)


def seen_line(seq: int, shown: int, expected: int, slowest_ms: int | None, late: Iterable[FeedTab]) -> str:
    """`seq 6 seen by 1 of 2 tabs, slowest 40 ms; late: tab 3fa2c1 (Chrome 131, connected 21:03:04, last seq 5)`."""
    line = f"seq {seq} seen by {shown} of {expected} tabs"
    if slowest_ms is not None:
        line += f", slowest {slowest_ms} ms"
    named = [
        f"tab {t.tab_id} ({t.browser or 'unknown browser'}, connected {_aware(t.connected_at):%H:%M:%S}, "
        f"last seq {t.seq})"
        for t in late
    ]
    return line + (f"; late: {', '.join(named)}" if named else "")


BROWSERS = (("Edg", "Edge"), ("OPR", "Opera"), ("Firefox", "Firefox"), ("Chrome", "Chrome"), ("Version", "Safari"))


def browser_name(user_agent: str) -> str:
    """`Mozilla/5.0 ... Chrome/131.0.0.0 Safari/537.36` -> `Chrome 131` (what a person calls it)."""
    for token, name in BROWSERS:
        if found := re.search(rf"{token}/(\d+)", user_agent):  # HeadlessChrome/131 is Chrome 131 too
            return f"{name} {found.group(1)}"
    return user_agent[:40] or "unknown browser"


def _live_tabs(tx: Transaction, project_id: int, now: datetime) -> list[FeedTab]:
    gone = now - timedelta(seconds=TAB_GONE_S)
    return list(
        tx.session.exec(
            select(FeedTab).where(
                FeedTab.project_id == project_id, col(FeedTab.closed).is_(False), col(FeedTab.heard_at) >= gone
            )
        )
    )


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every moment here is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)


def _log_tab(step: str, tab: FeedTab, **fields: object) -> None:
    """A tab's line: its project, its id and the change it has on screen, plus `fields`."""
    log_step(log, step, project_id=tab.project_id, tab=tab.tab_id, seq=tab.seq, **fields)
