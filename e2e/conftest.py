"""End-to-end fixtures: one real app process per session, Debian's Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from e2e.server import AppServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict:
    return {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    server = AppServer(data_dir=Path(tmp_path_factory.mktemp("app")))
    server.start()
    yield server
    server.stop()


def open_canvas(page: Page, url: str) -> None:
    """Load a page and wait until the app hydrated (its data came over the websocket)."""
    page.goto(url)
    page.wait_for_url(re.compile(r".*/p/\d+$"))
    expect(page.get_by_role("region", name="Queue")).to_be_visible()
    expect(page.get_by_label("Project name")).not_to_have_value("", timeout=15_000)


@pytest.fixture
def project_url(app_server: AppServer, browser: Browser) -> Iterator[str]:
    """A fresh project per test, so tests do not see each other's nodes."""
    page = browser.new_page()
    open_canvas(page, app_server.url)
    before = page.url
    page.get_by_role("button", name="New project").click()
    page.wait_for_url(lambda u: u != before and re.search(r"/p/\d+$", u) is not None)
    expect(page.get_by_label("Project name")).to_have_value(re.compile(r"^Project \d+$"))
    yield page.url
    page.close()
