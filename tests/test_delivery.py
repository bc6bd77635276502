"""The delivery ledger: tabs confirm what they showed; the timeline says who saw each change."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

import httpx
import pytest
from sqlmodel import select

from core.realtime.delivery import LATE_AFTER_S, TAB_GONE_S, ConfirmationInbox, TabReport, browser_name
from core.root import Core
from models.tables import FeedChange, utcnow
from rxapp.realtime.confirmations import BadReport, parse_reports

CHROME = "Chrome 131"


def _seen_lines(core: Core, job_id: str) -> list[str]:
    return [s.detail for s in core.jobs.timeline(job_id).steps if s.step == "feed.seen"]


def _report(project_id: int, tab: str, seq: int, at: datetime, closed: bool = False) -> TabReport:
    return TabReport(project_id, tab, seq, at, CHROME, closed=closed)


def _job_seq(core: Core, job_id: str) -> int:
    with core.db.session() as s:
        return max(s.exec(select(FeedChange.seq).where(FeedChange.job_id == job_id)))


async def test_a_change_shown_by_every_tab_says_so_with_the_slowest_delay(core: Core, project_id: int) -> None:
    t0 = utcnow()
    core.delivery.confirm([_report(project_id, "tab-a", 0, t0), _report(project_id, "tab-b", 0, t0)], t0)
    view = core.jobs.create_synthetic(project_id, "local/sketch", "self-test")
    seq = _job_seq(core, view.id)
    published = t0 + timedelta(milliseconds=10)
    core.delivery.confirm([_report(project_id, "tab-a", seq, published + timedelta(milliseconds=30))], published)
    assert _seen_lines(core, view.id) == []  # tab-b has not shown it yet
    steps_before = core.jobs.get(view.id).steps
    core.delivery.confirm([_report(project_id, "tab-b", seq, utcnow())])
    [line] = _seen_lines(core, view.id)
    assert line.startswith(f"seq {seq} seen by 2 of 2 tabs, slowest ") and line.endswith(" ms")
    assert core.jobs.get(view.id).steps == steps_before + 1
    # Not announced: a push to every tab per change is what confirmations must not cost.
    assert core.canvas.changes(project_id, seq).seq == seq


async def test_a_tab_that_stays_behind_is_named_told_to_resync_and_counted_when_it_catches_up(
    core: Core, project_id: int
) -> None:
    t0 = utcnow() - timedelta(seconds=5)
    core.delivery.confirm([_report(project_id, "fast", 0, t0), _report(project_id, "late", 0, t0)], t0)
    view = core.jobs.create_synthetic(project_id, "local/sketch", "self-test")
    seq = _job_seq(core, view.id)
    now = utcnow()
    assert core.delivery.confirm([_report(project_id, "fast", seq, now)], now) == set()
    # A heartbeat from the late tab before the deadline: not yet behind.
    assert core.delivery.confirm([_report(project_id, "late", 0, now)], now) == set()

    later = now + timedelta(seconds=LATE_AFTER_S + 1)
    core.delivery.sweep(later)
    [line] = _seen_lines(core, view.id)
    assert core.canvas.changes(project_id, seq).seq > seq  # news: open timelines reload
    assert f"seq {seq} seen by 1 of 2 tabs" in line
    assert f"late: tab late ({CHROME}, connected {t0:%H:%M:%S}, last seq 0)" in line
    assert core.delivery.confirm([_report(project_id, "late", 0, later)], later) == {"late"}
    # Told once; asked again only if it stays behind a while longer.
    assert core.delivery.confirm([_report(project_id, "late", 0, later)], later) == set()

    caught_up = later + timedelta(seconds=1)
    assert core.delivery.confirm([_report(project_id, "late", seq + 5, caught_up)], caught_up) == set()
    lines = _seen_lines(core, view.id)
    assert len(lines) == 2 and lines[1].startswith(f"seq {seq} seen by 2 of 2 tabs")


async def test_closed_and_silent_tabs_are_not_waited_for(core: Core, project_id: int) -> None:
    now = utcnow()
    long_ago = now - timedelta(seconds=TAB_GONE_S + 5)
    core.delivery.confirm([_report(project_id, "silent", 0, long_ago)], long_ago)
    core.delivery.confirm([_report(project_id, "open", 0, now), _report(project_id, "closing", 0, now)], now)
    core.delivery.confirm([_report(project_id, "closing", 0, now, closed=True)], now)
    view = core.jobs.create_synthetic(project_id, "local/sketch", "self-test")
    seq = _job_seq(core, view.id)
    core.delivery.confirm([_report(project_id, "open", seq, utcnow())])
    assert [line.split(",")[0] for line in _seen_lines(core, view.id)] == [f"seq {seq} seen by 1 of 1 tabs"]


async def test_a_tab_that_moves_to_another_project_counts_there_whatever_order_its_reports_arrive(
    core: Core, project_id: int
) -> None:
    other = core.canvas.create_project(core.accounts.local_user().id, "second").id
    now = utcnow()
    core.delivery.confirm([_report(project_id, "mover", 0, now)], now)
    core.delivery.confirm([_report(other, "mover", 0, now)], now)  # client-side navigation, same page
    core.delivery.confirm([_report(project_id, "mover", 0, now, closed=True)], now)  # its late goodbye
    assert [t.tab_id for t in core.delivery.tabs(other)] == ["mover"]
    assert core.delivery.tabs(project_id) == []


async def test_a_change_nobody_watches_is_settled_without_a_line(core: Core, project_id: int) -> None:
    view = core.jobs.create_synthetic(project_id, "local/sketch", "self-test")
    seq = _job_seq(core, view.id)
    core.delivery.sweep(utcnow() + timedelta(seconds=LATE_AFTER_S + 1))
    assert core.delivery.verdict(project_id, seq) == "unwatched"
    assert _seen_lines(core, view.id) == []


async def test_a_self_test_job_is_in_no_queue_and_no_change_list(core: Core, project_id: int) -> None:
    before = core.canvas.snapshot(project_id).seq
    view = core.jobs.create_synthetic(project_id, "local/sketch", "self-test")
    assert view.id not in {j.id for j in core.canvas.snapshot(project_id).jobs}
    changes = core.canvas.changes(project_id, before)
    assert changes.seq > before and changes.jobs == []  # tabs still move their sequence on


def test_reports_are_read_strictly_and_put_on_the_servers_clock() -> None:
    now = utcnow()
    body = {
        "reports": [
            {"project_id": 3, "tab_id": "abcd1234", "seq": 7, "applied_at": 1000, "sent_at": 1250, "reconnects": 2}
        ]
    }
    [report] = parse_reports(json.dumps(body).encode(), "Mozilla/5.0 Chrome/131.0.0.0 Safari/537.36", now)
    assert (report.project_id, report.tab_id, report.seq, report.browser) == (3, "abcd1234", 7, CHROME)
    assert report.reconnects == 2 and not report.closed
    assert report.applied_at == now - timedelta(milliseconds=250)
    good = {"project_id": 3, "tab_id": "abcd", "seq": 1, "applied_at": 1, "sent_at": 1}
    for bad in (
        b"nope",
        b'{"reports": []}',
        *(
            json.dumps({"reports": [{**good, **change}]}).encode()
            for change in ({"tab_id": "x"}, {"project_id": "3"}, {"seq": -1}, {"reconnects": "1"}, {"sent_at": None})
        ),
    ):
        with pytest.raises(BadReport):
            parse_reports(bad, "", now)


@pytest.mark.parametrize(
    ("agent", "name"),
    [
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            CHROME,
        ),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox 133"),
        ("Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15", "Safari 17"),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0", CHROME),
        ("", "unknown browser"),
    ],
)
def test_browser_names_are_what_people_call_them(agent: str, name: str) -> None:
    assert browser_name(agent) == name


async def test_the_confirmation_route_refuses_other_sites_strangers_and_nonsense(
    core: Core, client: httpx.AsyncClient, project_id: int
) -> None:
    report = {"project_id": project_id, "tab_id": "abcd1234", "seq": 0, "applied_at": 1, "sent_at": 1}
    ok = await client.post("/api/feed/seen", json={"reports": [report]}, headers={"origin": "http://testapp"})
    assert ok.status_code == 200 and ok.json() == {"resync": []}
    assert [t.tab_id for t in core.delivery.tabs(project_id)] == ["abcd1234"]
    foreign = await client.post("/api/feed/seen", json={"reports": [report]}, headers={"origin": "http://evil.example"})
    assert foreign.status_code == 403
    other = core.canvas.create_project(core.accounts.sign_up("b@example.com", "long enough pw")[0].id, "theirs")
    stranger = await client.post("/api/feed/seen", json={"reports": [{**report, "project_id": other.id}]})
    assert stranger.status_code == 404
    assert (await client.post("/api/feed/seen", content=b"{}")).status_code == 400
    assert (await client.post("/api/feed/seen", content=b"x" * 10_000)).status_code == 413
    assert len(core.delivery.tabs(project_id)) == 1


class _CountingLedger:
    """Stands in for the ledger: records each batch, asks tab "b" to resync."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def confirm(self, reports: list[TabReport]) -> set[str]:
        self.batches.append([r.tab_id for r in reports])
        if any(r.tab_id == "boom" for r in reports):
            raise RuntimeError("database down")
        return {"b"} & {r.tab_id for r in reports}


async def test_the_inbox_confirms_reports_arriving_together_in_one_batch_and_answers_each_tab() -> None:
    ledger = _CountingLedger()
    inbox = ConfirmationInbox(ledger, window_s=0.05)  # type: ignore[arg-type]
    now = utcnow()
    answers = await asyncio.gather(*(inbox.confirm([_report(1, tab, 1, now)]) for tab in ("a", "b", "c")))
    assert answers == [set(), {"b"}, set()]
    assert ledger.batches == [["a", "b", "c"]]
    assert await inbox.confirm([_report(1, "d", 1, now)]) == set()  # a later report is the next batch
    assert ledger.batches[-1] == ["d"]
    with pytest.raises(RuntimeError, match="database down"):
        await inbox.confirm([_report(1, "boom", 1, now)])


def test_a_report_that_lands_after_its_project_was_deleted_counts_no_tab_anywhere(core: Core) -> None:
    """A heartbeat checked for access just before the delete and written just after it (the inbox
    holds reports for a moment) made a tab of a project that no longer exists; on SQLite the next
    project took its id, and the tab counted there: `seen by 1 of 3 tabs` with two open."""
    owner = core.accounts.local_user()
    doomed = core.canvas.create_project(owner.id, "Doomed")
    core.removal.delete(doomed.id, owner.id, "Doomed")
    core.delivery.confirm([_report(doomed.id, "ghost", 3, utcnow())])
    assert core.delivery.tabs(doomed.id) == []
    fresh = core.canvas.create_project(owner.id, "Fresh")
    assert fresh.id != doomed.id  # a deleted project's id is never given again (links, tabs, undo)
    assert core.delivery.tabs(fresh.id) == []
