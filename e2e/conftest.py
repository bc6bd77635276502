"""End-to-end fixtures: one real app process per session, Debian's Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from e2e.helpers import open_canvas
from e2e.server import AppServer, FakeProviderServer

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


KIE_HMAC_KEY = "e2e-kie-hmac"


@pytest.fixture(scope="session")
def fake_kie(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeProviderServer]:
    server = FakeProviderServer(
        "kie_server", Path(tmp_path_factory.mktemp("kie")) / "kie.log", "e2e-kie-key", ("--hmac-key", KIE_HMAC_KEY)
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_fal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeProviderServer]:
    server = FakeProviderServer("fal_server", Path(tmp_path_factory.mktemp("fal")) / "fal.log", "e2e-fal-key")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_replicate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeProviderServer]:
    server = FakeProviderServer(
        "replicate_server", Path(tmp_path_factory.mktemp("replicate")) / "replicate.log", "r8_e2e-token"
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_fakes(
    fake_kie: FakeProviderServer, fake_fal: FakeProviderServer, fake_replicate: FakeProviderServer
) -> Iterator[None]:
    """Each test starts and ends with the fakes in their default mode."""
    for fake in (fake_kie, fake_fal, fake_replicate):
        fake.configure()
    yield
    for fake in (fake_kie, fake_fal, fake_replicate):
        fake.configure()


@pytest.fixture(scope="session")
def app_server(
    tmp_path_factory: pytest.TempPathFactory,
    fake_kie: FakeProviderServer,
    fake_fal: FakeProviderServer,
    fake_replicate: FakeProviderServer,
) -> Iterator[AppServer]:
    env = {
        "KIE_API_KEY": fake_kie.api_key,
        "KIE_BASE_URL": fake_kie.url,
        "KIE_WEBHOOK_HMAC_KEY": KIE_HMAC_KEY,
        "FAL_KEY": fake_fal.api_key,
        "FAL_QUEUE_URL": fake_fal.url,
        "FAL_JWKS_URL": f"{fake_fal.url}/.well-known/jwks.json",
        "REPLICATE_API_TOKEN": fake_replicate.api_key,
        "REPLICATE_BASE_URL": fake_replicate.url,
        "IMAGE_FETCH_ALLOW_HOSTS": "127.0.0.1",  # the fakes serve their results on loopback
        "POLL_START_S": "1",
        "POLL_CAP_S": "2",
        "RETRY_BASE_S": "0.2",
    }
    server = AppServer(data_dir=Path(tmp_path_factory.mktemp("app")), env=env)
    server.start()
    yield server
    server.stop()


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
