"""Presence in the scaled setup: three people whose tabs sit on different workers see the same list."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from deploy.cluster import Cluster
from e2e.helpers import open_canvas
from e2e.server import AppServer, scaled_cluster
from e2e.test_sharing import GONE_MS, Person, presence, share
from tests.isolation import redis_db

WORKERS = 3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with scaled_cluster(Path(tmp_path_factory.mktemp("presence")), WORKERS, redis_db(), {"AUTH_REQUIRED": "true"}) as c:
        yield c


def workers_of(cluster: Cluster, project_id: int) -> set[int]:
    """The workers that logged a tab joining the project."""
    found = set()
    for index in range(WORKERS):
        for line in (cluster.log_dir / f"worker-{index}.log").read_text(errors="replace").splitlines():
            if line.startswith("{") and '"tab.joined"' in line and json.loads(line).get("project_id") == project_id:
                found.add(index)
    return found


def test_presence_is_the_same_on_every_worker(browser: Browser, cluster: Cluster) -> None:
    server = AppServer(data_dir=cluster.log_dir, port=cluster.port)  # only its url: the balancer's
    owner, editor, viewer = (Person(browser, server, name) for name in ("owner", "editor", "viewer"))
    owner.page.get_by_role("button", name="Share").click()
    share(owner.page, editor.email, "editor")
    share(owner.page, viewer.email, "viewer")
    owner.page.keyboard.press("Escape")
    project_url = owner.page.url
    extra = viewer.context.new_page()
    for page in (editor.page, viewer.page, extra):
        open_canvas(page, project_url)
    assert len(workers_of(cluster, int(project_url.rsplit("/", 1)[-1]))) == WORKERS  # 4 tabs over 3 workers

    pages = (owner.page, editor.page, viewer.page, extra)
    for page in pages:
        expect(presence(page)).to_have_count(3)
        expect(presence(page).filter(has_text=viewer.email)).to_contain_text("2 tabs")
    extra.close()
    for page in pages[:3]:
        expect(presence(page).filter(has_text=viewer.email)).to_contain_text("1 tab", timeout=GONE_MS)
    viewer.page.close()
    for page in pages[:2]:
        expect(presence(page)).to_have_count(2, timeout=GONE_MS)
    for person in (owner, editor, viewer):
        person.context.close()
