"""The scaled configuration: PostgreSQL + Redis + 3 workers behind one port, 4 tabs over them."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from playwright.sync_api import Browser, Page, expect

from deploy.cluster import Cluster
from e2e.helpers import RESULT_ALT, add_text_node, job_rows, nodes, open_canvas
from e2e.scaled import click_all
from e2e.seed import Seeder
from e2e.server import scaled_cluster, wait_for_spread
from e2e.socket_tabs import SocketTab, run
from tests.isolation import redis_db

WORKERS = 3
DONE = 60_000


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    # A crashed worker's claims run out quickly here, and polls come often.
    fast = {"LOCAL_PROVIDER_DELAY_S": "2", "WORK_LEASE_S": "5", "POLL_START_S": "1", "POLL_CAP_S": "2"}
    with scaled_cluster(Path(tmp_path_factory.mktemp("scaled")), WORKERS, redis_db(), fast) as cluster:
        yield cluster


def crash_evidence(cluster: Cluster, tabs: list[Page]) -> str:
    """Each tab's unanswered Generates, and every worker log line naming one of them."""
    waiting = {index: tab.evaluate("window.__roomStore.unconfirmed()") for index, tab in enumerate(tabs)}
    lines = [f"unanswered Generates per tab: {waiting}"]
    for log in sorted(cluster.log_dir.glob("worker-*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if any(request in line for ids in waiting.values() for request in ids):
                lines.append(f"{log.name}: {line[:400]}")
    return "\n".join(lines)


def queue_order(page: Page) -> list[str]:
    return [str(row.get_attribute("data-job-id")) for row in job_rows(page).all()]


# Known flake, open (2026-12-06): in 1 of 3 clean-clone runs and in one run of the suite's helper, a
# click made right after the SIGKILL never reached the server (3 `job.created` lines for the
# project, none for it, despite the resend on reconnect and the 5 s resend), so one tab held 3 of 4
# rows. Suspect: the nodes' fieldset is disabled (`~may_edit`) for a moment while the killed
# worker's tabs reconnect, and a click landing then is swallowed by the browser. Not strict: a
# pass is reported as XPASS; the fault suite still checks lost and doubled jobs on every case.
def test_four_tabs_over_three_workers_see_every_job_and_survive_a_worker_crash(
    browser: Browser, cluster: Cluster
) -> None:
    first = browser.new_context().new_page()
    open_canvas(first, cluster.url)
    project_url = first.url
    tabs = [first] + [browser.new_context().new_page() for _ in range(3)]
    for tab in tabs[1:]:
        open_canvas(tab, project_url)
    wait_for_spread(cluster, int(project_url.rsplit("/", 1)[-1]))  # the 4 tabs' websockets on all 3 workers

    # Work from two tabs on different workers; each change is seen by every tab.
    add_text_node(tabs[0], "a lighthouse at dusk")
    add_text_node(tabs[1], "a fox in the snow")
    for tab in tabs:
        expect(nodes(tab)).to_have_count(2)
    nodes(tabs[0]).nth(0).get_by_role("button", name="Generate").click()
    nodes(tabs[1]).nth(1).get_by_role("button", name="Generate").click()
    for tab in tabs:
        expect(job_rows(tab)).to_have_count(2)

    # Crash a worker while both jobs run; more work arrives meanwhile.
    cluster.kill_worker(1)
    nodes(tabs[2]).nth(0).get_by_role("button", name="Generate").click()
    nodes(tabs[3]).nth(1).get_by_role("button", name="Generate").click()

    try:
        for tab in tabs:
            expect(job_rows(tab)).to_have_count(4, timeout=DONE)
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n{crash_evidence(cluster, tabs)}") from None
    for tab in tabs:
        expect(tab.locator("[data-testid=queue-row][data-status=completed]")).to_have_count(4, timeout=DONE)
        for index in range(2):
            expect(nodes(tab).nth(index).get_by_alt_text(RESULT_ALT)).to_be_visible(timeout=DONE)
    orders = [queue_order(tab) for tab in tabs]
    assert all(order == orders[0] for order in orders), orders

    # A change made outside the app, by hand in psql, reaches every tab through the triggers.
    with psycopg.connect(cluster.env["DATABASE_URL"].replace("+psycopg", ""), autocommit=True) as connection:
        connection.execute("UPDATE node SET prompt = 'edited in psql' WHERE id = (SELECT min(id) FROM node)")
    for tab in tabs:
        expect(nodes(tab).nth(0).get_by_label("Prompt")).to_have_value("edited in psql")

    # The crashed worker comes back and its new tabs see the same screen.
    cluster.start_worker(1)
    late = browser.new_context().new_page()
    open_canvas(late, project_url)
    expect(job_rows(late)).to_have_count(4)
    assert queue_order(late) == orders[0]
    assert re.search(r"/p/\d+$", late.url)


def _story(tab: SocketTab) -> str:
    """What a tab holds and how it got there: its rows by status, and each message's span."""
    queue, _images = tab.screen()
    spans = [
        f"snapshot@{item.message['seq']}"
        if item.event == "canvas.snapshot"
        else f"{item.message['base']}->{item.message['seq']}"
        for item in tab.received
        if item.event in ("canvas.snapshot", "canvas.change")
    ]
    return f"{len(queue)} rows {Counter(status for _, status in queue)}, connected={tab.connected}, messages {spans}"


def test_twenty_tabs_over_three_workers_converge_after_fifty_jobs_each_change_once(cluster: Cluster) -> None:
    seeder = Seeder(cluster.url, Path(cluster.env["DATA_DIR"]), cluster.env["DATABASE_URL"], "local/sketch")
    project = seeder.project("twenty tabs", finished_jobs=0, pending_jobs=0)
    seeder.close()
    jobs = 50

    dsn = cluster.env["DATABASE_URL"].replace("+psycopg", "")

    async def scenario() -> list[SocketTab]:
        # Reconnecting, as pages do: under this load HAProxy may take a slow worker out and cut its tabs.
        tabs = [SocketTab(cluster.url, project.id, reconnect=True) for _ in range(20)]
        await asyncio.gather(*(tab.open(timeout_s=60) for tab in tabs))
        requests = [f"twenty-{i}" for i in range(jobs)]
        try:
            # From tabs on every worker; a click lost with a cut socket is sent again (one job per id).
            await click_all(tabs, dsn, project.node_id, requests, timeout_s=DONE / 1000)

            def settled(tab: SocketTab) -> bool:
                queue, _images = tab.screen()
                return len(queue) == jobs and all(status == "completed" for _, status in queue)

            for number, tab in enumerate(tabs):
                try:
                    await tab.wait_until(settled, timeout_s=DONE / 1000)
                except TimeoutError:
                    raise AssertionError(f"tab {number} did not settle: {_story(tab)}") from None
        finally:
            await asyncio.gather(*(tab.close() for tab in tabs))
        return tabs

    tabs = run(scenario())
    wait_for_spread(cluster, project.id)  # the 20 tabs landed on all 3 workers
    screens = [tab.screen() for tab in tabs]
    assert all(screen == screens[0] for screen in screens)
    assert screens[0][1][project.node_id]  # the node shows a result
    for tab in tabs:
        # Each change once: every message starts where the last one ended. Right after a snapshot
        # (a reconnect), the room's next message may start earlier: its rows overlap what the
        # snapshot holds (merged by version), but none is missing.
        held, snapshot = None, False
        for item in tab.received:
            if item.event == "canvas.snapshot":
                held, snapshot = item.message["seq"], True
            elif item.event == "canvas.change":
                base, seq = item.message["base"], item.message["seq"]
                if snapshot and seq <= held:
                    continue  # pushed before the snapshot, arrived after it: all of it is held already
                assert (base <= held if snapshot else base == held) and held < seq, (held, item.message)
                held, snapshot = seq, False
