"""Connection state: a tab whose socket is down says so, keeps its clicks, and comes back exact;
a tab whose socket went silent leaves the others' Presence list."""

from __future__ import annotations

import re
import time

from playwright.sync_api import Browser, Locator, Page, expect

from e2e.helpers import SocketGate, add_text_node, job_rows, nodes, open_canvas, set_prompt

#: PRESENCE_TIMEOUT_S's default, which the app under test runs with.
PRESENCE_TIMEOUT_MS = 5000


def banner(page: Page, text: str) -> Locator:
    """The connection banner while it starts with `text` (has_text alone is a substring match)."""
    return page.get_by_role("status").filter(has_text=re.compile("^" + re.escape(text)))


def test_a_lost_socket_says_reconnecting_keeps_clicks_and_comes_back_exact(browser: Browser, project_url: str) -> None:
    a = browser.new_context().new_page()
    gate = SocketGate(a)  # before loading: it must sit on a's first websocket
    open_canvas(a, project_url)
    add_text_node(a, "a harbour at dawn")
    b = browser.new_context().new_page()
    open_canvas(b, project_url)
    expect(nodes(b).first.get_by_label("Prompt")).to_have_value("a harbour at dawn")  # b types over what it sees
    expect(banner(a, "Reconnecting...")).to_have_count(0)

    gate.cut()
    expect(banner(a, "Reconnecting...")).to_be_visible()
    nodes(a).first.get_by_role("button", name="Generate").click()
    expect(banner(a, "Reconnecting...")).to_contain_text("1 click will be sent when back online")
    set_prompt(nodes(b).first, "a harbour at dusk")  # meanwhile, someone else works on
    expect(job_rows(a)).to_have_count(0)

    gate.restore()
    # Reflex retries with a growing pause (up to 2 s) while the line is cut: allow for a few.
    expect(banner(a, "Back online")).to_be_visible(timeout=30_000)
    expect(banner(a, "Reconnecting...")).to_have_count(0)
    expect(nodes(a).first.get_by_label("Prompt")).to_have_value("a harbour at dusk")
    expect(job_rows(a)).to_have_count(1)  # the click made while down was sent
    expect(job_rows(b)).to_have_count(1)
    expect(banner(a, "Back online")).to_have_count(0, timeout=10_000)  # and the banner goes


def test_a_tab_whose_socket_went_silent_leaves_presence_within_the_timeout(browser: Browser, project_url: str) -> None:
    watcher = browser.new_context().new_page()
    open_canvas(watcher, project_url)
    sleeper = browser.new_context().new_page()
    gate = SocketGate(sleeper)
    open_canvas(sleeper, project_url)
    person = watcher.get_by_role("region", name="Presence").get_by_test_id("presence-person")
    expect(person).to_contain_text("3 tabs")  # with the page that made the project

    gate.silent = True  # no close: the server only learns from its unanswered pings
    silenced = time.monotonic()
    expect(person).to_contain_text("2 tabs", timeout=PRESENCE_TIMEOUT_MS + 1000)
    assert time.monotonic() - silenced < PRESENCE_TIMEOUT_MS / 1000 + 0.5

    gate.wake()  # the lid opens: the ping waiting in the buffers is answered
    expect(person).to_contain_text("3 tabs")
