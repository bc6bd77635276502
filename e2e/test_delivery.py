"""Every tab confirms what it showed; `Check realtime` tests the chain; a tunnel URL does not lock out localhost."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from e2e.helpers import SocketGate, add_text_node, job_rows, nodes, open_canvas, open_check_realtime, queue
from e2e.server import AppServer, free_port

SOCKET_PROBE = """async (url) => await new Promise((done) => {
  const ws = new WebSocket(url);
  ws.onopen = () => { ws.close(); done("open"); };
  ws.onerror = () => done("refused");
})"""


def _socket_url(http_url: str) -> str:
    return http_url.replace("http://", "ws://") + "/_event/?EIO=4&transport=websocket"


def _new_project(page: Page, app_url: str) -> str:
    open_canvas(page, app_url)
    before = page.url
    page.get_by_role("button", name="New project").click()
    page.wait_for_url(lambda u: u != before and re.search(r"/p/\d+$", u) is not None)
    expect(page.get_by_label("Project name")).to_have_value(re.compile(r"^Project \d+$"))
    return page.url


def _run_check(page: Page) -> None:
    open_check_realtime(page).get_by_role("button", name="Run check").click()


def test_a_late_tab_is_named_told_to_resync_and_counted_once_it_caught_up(
    browser: Browser, app_server: AppServer
) -> None:
    context = browser.new_context()
    a, b = context.new_page(), context.new_page()
    gate = SocketGate(b)  # before loading: it must sit on b's first websocket
    url = _new_project(a, app_server.url)
    open_canvas(b, url)
    add_text_node(a, "seen by every tab")
    expect(nodes(b)).to_have_count(1)

    gate.cut()  # the page stays open; only its websocket dies
    nodes(a).get_by_role("button", name="Generate").click()
    expect(job_rows(a).first).to_have_attribute("data-status", "completed", timeout=20_000)
    job_rows(a).first.get_by_role("button", name="Timeline").click()
    queue(a).get_by_role("button", name="Details").click()  # deliveries are internal steps
    steps = a.get_by_test_id("timeline-step")
    late = steps.filter(has_text="seen by 1 of 2 tabs")
    expect(late.first).to_be_visible(timeout=15_000)
    expect(late.first).to_contain_text(
        re.compile(r"late: tab \w+ \(Chrome \d+, connected \d\d:\d\d:\d\d, last seq \d+\)")
    )
    expect(job_rows(b)).to_have_count(0)  # b really missed it
    job_id = job_rows(a).first.get_attribute("data-job-id")
    behind = app_server.log_events("tab.behind", job_id)
    assert behind and all(e["project_id"] for e in behind)

    gate.restore()
    expect(job_rows(b).first).to_have_attribute("data-status", "completed", timeout=30_000)
    expect(steps.filter(has_text="seen by 2 of 2 tabs").first).to_be_visible(timeout=15_000)
    late_tab = behind[0]["tab"]
    asked = [e for e in app_server.log_events("tab.resync_asked") if e["tab"] == late_tab]
    resynced = [e for e in app_server.log_events("tab.resynced") if e["tab"] == late_tab]
    reconnected = [e for e in app_server.log_events("tab.reconnected") if e["tab"] == late_tab]
    assert asked and resynced and reconnected
    assert resynced[0]["project_id"] == reconnected[0]["project_id"] == behind[0]["project_id"]


def test_check_realtime_passes_on_a_working_app(browser: Browser, app_server: AppServer) -> None:
    page = browser.new_page()
    _new_project(page, app_server.url)
    _run_check(page)
    dialog = page.get_by_role("dialog", name="Check realtime")
    expect(dialog.get_by_test_id("check-outcome")).to_have_text("Realtime check passed", timeout=60_000)
    hops = dialog.get_by_test_id("check-hop")
    for name in (
        "job row written",
        "change event written",
        "change received by this worker",
        "pushed to the tabs",
        "confirmed by each open tab",
        "webhook reachable at the public URL",
        "image stored and served",
    ):
        expect(hops.filter(has_text=name)).to_have_attribute("data-verdict", "ok")
    expect(hops.filter(has_text="confirmed by each open tab")).to_contain_text("seen by 1 of 1 tabs")
    dialog.get_by_role("button", name="Close").click()
    expect(job_rows(page)).to_have_count(0)  # the synthetic job is in no queue


@pytest.fixture(scope="module")
def tunnelled_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """`PUBLIC_BASE_URL` names another host (as a tunnel would), where nothing listens."""
    server = AppServer(
        data_dir=Path(tmp_path_factory.mktemp("tunnelled")),
        env={"PUBLIC_BASE_URL": f"http://127.0.0.2:{free_port()}", "POLL_START_S": "1", "POLL_CAP_S": "2"},
        private_workdirs=True,
    )
    server.start()
    yield server
    server.stop()


def test_the_app_opened_at_localhost_works_while_public_url_names_another_host(
    browser: Browser, tunnelled_app: AppServer
) -> None:
    local = f"http://localhost:{tunnelled_app.port}"
    page = browser.new_page()
    open_canvas(page, local)  # hydrated: the websocket was accepted
    assert page.evaluate(SOCKET_PROBE, _socket_url(local)) == "open"

    foreign = browser.new_page()
    foreign.route("http://evil.example/", lambda route: route.fulfill(body="<html>elsewhere</html>"))
    foreign.goto("http://evil.example/")
    assert foreign.evaluate(SOCKET_PROBE, _socket_url(local)) == "refused"


def test_check_realtime_fails_at_the_webhook_hop_with_the_reason(browser: Browser, tunnelled_app: AppServer) -> None:
    page = browser.new_page()
    open_canvas(page, f"http://localhost:{tunnelled_app.port}")
    _run_check(page)
    dialog = page.get_by_role("dialog", name="Check realtime")
    expect(dialog.get_by_test_id("check-outcome")).to_have_text("Realtime check failed", timeout=90_000)
    webhook = dialog.get_by_test_id("check-hop").filter(has_text="webhook reachable at the public URL")
    expect(webhook).to_have_attribute("data-verdict", "failed")
    expect(webhook).to_contain_text("is not reachable from this machine")
    expect(webhook.get_by_test_id("check-fix")).to_contain_text("set PUBLIC_BASE_URL")
    # The chain before it ran. The tab hops' verdicts are `test_check_realtime_passes_on_a_working_app`'s:
    # here, a clean-clone run on a loaded machine saw this tab confirm later than the 3 s the check
    # allows, a true verdict but not this test's subject.
    written = dialog.get_by_test_id("check-hop").filter(has_text="job row written")
    expect(written).to_have_attribute("data-verdict", "ok")
