"""The room broadcast: one row-sized message per change, to every tab, and nothing else.

Tabs here are real Reflex sessions: Chromium where the page matters, and socket clients
speaking the page's protocol (e2e/socket_tabs.py) where only the traffic does.
"""

from __future__ import annotations

import asyncio
import re

from playwright.sync_api import Browser, WebSocket, expect

from e2e.helpers import RESULT_ALT, job_rows, nodes, open_canvas
from e2e.seed import seeder_of
from e2e.server import AppServer
from e2e.socket_tabs import SocketTab, handler_name, run

ROOM_STATE = ("rxapp.states.room", "ProjectRoom")
LOCAL_MODEL = "local/sketch"


def test_one_more_job_in_a_project_of_100_jobs_costs_another_tab_a_few_kib(
    browser: Browser, app_server: AppServer
) -> None:
    a, b = browser.new_page(), browser.new_page()
    open_canvas(a, app_server.url)  # the user's first project stays the one a first visit makes
    seeder = seeder_of(app_server, LOCAL_MODEL)
    project = seeder.project("a hundred jobs", finished_jobs=100, pending_jobs=0)
    seeder.close()
    url = f"{app_server.url}/p/{project.id}"
    frames: list[int] = []
    recording = {"on": False}

    def watch(socket: WebSocket) -> None:
        socket.on("framereceived", lambda frame: recording["on"] and frames.append(len(frame)))

    b.on("websocket", watch)
    for page in (a, b):
        open_canvas(page, url)
        expect(job_rows(page)).to_have_count(100)
    recording["on"] = True
    nodes(a).first.get_by_role("button", name="Generate").click()
    expect(job_rows(b)).to_have_count(101)
    expect(job_rows(b).first).to_have_attribute("data-status", "completed", timeout=20_000)
    expect(nodes(b).first.get_by_alt_text(RESULT_ALT)).to_be_visible()
    recording["on"] = False
    # Whole lists would be ~40 KiB per status change; rows are a few hundred bytes each.
    assert frames, "the other tab received nothing"
    assert sum(frames) < 8 * 1024, f"{len(frames)} frames, {sum(frames)} characters"
    assert max(frames) < 2 * 1024, frames


def test_a_read_only_event_in_one_tab_sends_nothing_to_the_others(app_server: AppServer, project_url: str) -> None:
    project_id = int(project_url.rstrip("/").rsplit("/", 1)[-1])

    async def scenario() -> None:
        reader, *others = tabs = [SocketTab(app_server.url, project_id) for _ in range(3)]
        await asyncio.gather(*(tab.open() for tab in tabs))
        try:
            marks = [len(tab.received) for tab in others]
            answered = len(reader.received)
            await reader.send(handler_name(*ROOM_STATE, "refresh_projects"))
            await reader.wait_for(lambda r: r.event == "event" and reader.received.index(r) >= answered)
            # Then a real change: anything the read caused was sent to the others before it.
            name = f"renamed {project_id}"
            await reader.send(handler_name(*ROOM_STATE, "on_project"), action="rename", value=name)
            for tab, mark in zip(others, marks, strict=True):
                change = await tab.wait_for(
                    lambda r: r.event == "canvas.change" and r.message.get("project", {}).get("name") == name
                )
                between = tab.received[mark : tab.received.index(change)]
                assert between == [], [(r.event, r.size) for r in between]
        finally:
            await asyncio.gather(*(tab.close() for tab in tabs))

    run(scenario())


def test_a_tab_whose_project_changed_meanwhile_gets_a_snapshot_of_its_own(
    app_server: AppServer, project_url: str
) -> None:
    """Joining sends the newcomer a snapshot; the tabs already there get nothing for it."""
    project_id = int(project_url.rstrip("/").rsplit("/", 1)[-1])

    async def scenario() -> None:
        first = SocketTab(app_server.url, project_id)
        await first.open()
        second = SocketTab(app_server.url, project_id)
        try:
            mark = len(first.received)
            await second.open()
            assert len(second.of("canvas.snapshot")) == 1
            await first.send(handler_name(*ROOM_STATE, "on_project"), action="rename", value="after the join")
            change = await first.wait_for(lambda r: r.event == "canvas.change")
            assert [r.event for r in first.received[mark : first.received.index(change)] if r.event != "event"] == []
        finally:
            await asyncio.gather(first.close(), second.close())

    run(scenario())


def test_rows_are_keyed_so_a_new_job_leaves_the_other_rows_in_place(browser: Browser, project_url: str) -> None:
    page = browser.new_page()
    open_canvas(page, project_url)
    page.get_by_role("button", name="Add text-to-image node").click()
    node = nodes(page).last
    node.get_by_label("Prompt").fill("keyed rows")
    node.get_by_role("button", name="Generate").click()
    expect(job_rows(page).first).to_have_attribute("data-status", re.compile("queued|submitted|running|completed"))
    first_id = job_rows(page).first.get_attribute("data-job-id")
    page.evaluate(
        "id => { window.__kept = document.querySelector(`[data-job-id='${id}']`); }",
        first_id,
    )
    node.get_by_role("button", name="Generate").click()
    expect(job_rows(page).nth(1)).to_have_attribute("data-job-id", str(first_id))
    # The same DOM element moved down: React matched it by key instead of re-creating rows by index.
    assert page.evaluate("id => document.querySelector(`[data-job-id='${id}']`) === window.__kept", first_id)
