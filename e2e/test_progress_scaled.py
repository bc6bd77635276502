"""Progress across workers: a render on one worker shows its rising bar and previews in a tab on another."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from deploy.cluster import Cluster
from e2e.helpers import RESULT_ALT, model_node, nodes, open_canvas
from e2e.server import AppServer, scaled_cluster, tab_joins
from e2e.test_progress import RECORDER, new_project
from tests.isolation import redis_db
from tests.wait import wait_until

WORKERS = 2


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    workdir = Path(tmp_path_factory.mktemp("progress"))
    with scaled_cluster(workdir, WORKERS, redis_db(), {"LOCAL_PROVIDER_DELAY_S": "4"}) as running:
        yield running


def opened_on(cluster: Cluster, page: Page, url: str, project_id: int) -> int:
    """Open the project in `page`; returns the worker its socket joined on."""
    before = tab_joins(cluster, project_id)
    open_canvas(page, url)
    after = wait_until(lambda: tab_joins(cluster, project_id), lambda now: now != before, what="the tab's join logged")
    return [n - m for n, m in zip(after, before, strict=True)].index(1)


def on_two_workers(browser: Browser, cluster: Cluster, url: str, project_id: int) -> tuple[Page, Page]:
    """A tab in each of two browser contexts, whose sockets sit on different workers."""
    a = browser.new_context().new_page()
    a_worker = opened_on(cluster, a, url, project_id)
    others = browser.new_context()
    for _ in range(2 * WORKERS):  # HAProxy hands websockets out in turns: the next ones go elsewhere
        b = others.new_page()
        if opened_on(cluster, b, url, project_id) != a_worker:
            return a, b
        b.close()
    raise AssertionError("every tab's socket landed on the same worker")


def test_a_render_on_one_worker_shows_its_progress_in_a_tab_on_the_other(browser: Browser, cluster: Cluster) -> None:
    server = AppServer(data_dir=cluster.log_dir, port=cluster.port)  # only its url: the balancer's
    url = new_project(browser, server)
    project_id = int(url.rsplit("/", 1)[-1])
    a, b = on_two_workers(browser, cluster, url, project_id)
    node = model_node(a, "a lighthouse in fog", "local/sketch")
    expect(nodes(b)).to_have_count(1)
    b.evaluate(RECORDER)
    node.get_by_role("button", name="Generate").click()
    expect(nodes(b).first.get_by_alt_text(RESULT_ALT)).to_be_visible(timeout=60_000)

    seen = b.evaluate("window.__progressSeen")
    result_at = next(i for i, entry in enumerate(seen) if entry[0] == "result")
    values = [int(e[2]) for e in seen[:result_at] if e[:2] == ["bar", "node-progressbar"] and e[2] is not None]
    steps = [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]
    assert len(steps) >= 2 and steps == sorted(steps), steps
    assert any(e[0] == "preview" and e[2] > 0 for e in seen[:result_at]), seen[:result_at]
