"""Presence in the scaled setup: three people whose tabs sit on different workers see the same list."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from deploy.cluster import Cluster
from e2e.helpers import open_canvas
from e2e.server import AppServer, scaled_cluster, wait_for_spread
from e2e.test_sharing import GONE_MS, Person, presence, share
from tests.isolation import redis_db

WORKERS = 3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with scaled_cluster(Path(tmp_path_factory.mktemp("presence")), WORKERS, redis_db(), {"AUTH_REQUIRED": "true"}) as c:
        yield c


def test_presence_is_the_same_on_every_worker(browser: Browser, cluster: Cluster) -> None:
    server = AppServer(data_dir=cluster.log_dir, port=cluster.port)  # only its url: the balancer's
    owner, editor, viewer = (Person(browser, server, name) for name in ("owner", "editor", "viewer"))
    owner.page.get_by_role("button", name="Share").click()
    share(owner.page, editor.email, "editor")
    share(owner.page, viewer.email, "viewer")
    owner.page.keyboard.press("Escape")
    project_url = owner.page.url
    extra = viewer.context.new_page()
    pages = (owner.page, editor.page, viewer.page, extra)
    for page in pages[1:]:
        open_canvas(page, project_url)
    wait_for_spread(cluster, int(project_url.rsplit("/", 1)[-1]))  # 4 tabs over 3 workers

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
