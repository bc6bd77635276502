"""End-to-end fixtures: one real app process per session, Debian's Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from xdist.scheduler import LoadScopeScheduling
from xdist.workermanage import WorkerController

from e2e.helpers import open_canvas
from e2e.server import AppServer, FakeProviderServer

#: How long an `expect` waits by default. Playwright's 5 s is short for a chain that crosses the
#: app (a key press -> the server -> a job -> every tab) while three test workers share CI's two
#: cores: in a clean-clone run, tests that pass alone in a second timed out there. A passing
#: check returns as soon as it holds; only a failing one waits this long.
expect.set_options(timeout=15_000)

#: The browser the suite drives: Debian's `chromium-headless-shell`, the same Chromium built as
#: the headless shell (what Playwright itself runs headless tests on). The suite opens a fresh
#: context per person and tab, and the full browser's `--headless` paid ~0.9 s of CPU for each
#: new page's renderer and browser-side set-up, the shell 0.07 s; a canvas load cost 2.1 s of
#: CPU against 0.9 s. Chromium was half the suite's CPU on CI's 2 cores (2026-12-07).
CHROMIUM = "/usr/bin/chromium-headless-shell"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


#: Named `*scaled.py` (run in `make test`'s second step) but a work unit of its own: `make
#: run-scaled` on private PostgreSQL and Redis, no browser, so the unit tests' worker takes it
#: after them instead of lengthening the scaled suites' worker (about a minute).
SCALED_APART = "e2e/test_run_scaled.py"


def file_of(nodeid: str) -> str:
    """The file a test id names, relative to the project (`e2e/test_x.py`)."""
    return nodeid.split("::", 1)[0]


def work_unit_of(nodeid: str) -> str | None:
    """What one xdist worker runs in one go, in file order; None for a unit test.

    "scaled": the files named `*scaled.py` (but `SCALED_APART`), which run the scaled setup,
    each loading both cores, and share the worker's Redis database. Any other end-to-end file:
    itself, so its module-scoped apps start once; a worker running any of them starts its own
    `app_server`.
    """
    path = file_of(nodeid)
    if not path.startswith("e2e/"):
        return None
    return "scaled" if path.endswith("scaled.py") and path != SCALED_APART else path


def is_end_to_end(scope: str) -> bool:
    """An xdist work unit of end-to-end tests (see `work_unit_of`), not a unit test."""
    return scope == "scaled" or work_unit_of(scope) is not None


class SuiteScheduling(LoadScopeScheduling):
    """`make test`'s xdist scheduling (`--dist loadgroup`): the scaled suites first, as one work
    unit, then the unit tests one by one to whichever worker is free, then the other end-to-end
    files (see `pytest_collection_modifyitems`). So `make test`'s last step, the scaled suites
    and the unit tests, runs them side by side: the scaled suites wait out outages and restarts
    with half the two cores idle, and the unit tests fill them.

    Unit tests never come after an end-to-end test on a worker: Playwright's event loop, running
    from then on, would refuse pytest-asyncio's. A worker that ran one takes only end-to-end
    work, or waits for the end. (xdist's own `xdist_group` marks do not reach its scheduler under
    pytest 9.2, whose node ids are no longer the strings xdist appends the group to.)
    """

    def __init__(self, config: pytest.Config, log: object = None) -> None:
        super().__init__(config, log)  # type: ignore[arg-type]
        config.option.loadscopereorder = False  # collection order, as sorted below

    def _split_scope(self, nodeid: str) -> str:
        return work_unit_of(nodeid) or nodeid

    def _assign_work_unit(self, node: WorkerController) -> None:
        if any(is_end_to_end(scope) for scope in self.assigned_work.get(node, {})):
            end_to_end = next((scope for scope in self.workqueue if is_end_to_end(scope)), None)
            if end_to_end is None:
                return  # only unit tests are left: the other worker takes them
            self.workqueue.move_to_end(end_to_end, last=False)
        super()._assign_work_unit(node)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> LoadScopeScheduling | None:
    return SuiteScheduling(config, log) if config.getvalue("dist") == "loadgroup" else None


#: Per-test deadlines of the end-to-end tests (pytest-timeout; the unit tests' default is in
#: pyproject.toml). They include the fixtures' set-up: an app's first start builds the frontend.
SCALED_TIMEOUT_S = 900
BROWSER_TIMEOUT_S = 600


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        unit = work_unit_of(item.nodeid)
        if unit and item.get_closest_marker("timeout") is None:
            scaled = file_of(item.nodeid).endswith("scaled.py")
            item.add_marker(pytest.mark.timeout(SCALED_TIMEOUT_S if scaled else BROWSER_TIMEOUT_S))
    if getattr(config.option, "loadgroup", False):
        # An xdist worker of `make test`, whose scheduler takes the work units in this order: the
        # longest unit, the scaled suites, first, so the unit tests run beside it (SuiteScheduling);
        # each file's tests together, so a module's cluster starts once.
        def order(item: pytest.Item) -> tuple[int, str]:
            unit = work_unit_of(item.nodeid)
            return (1, "") if unit is None else (0 if unit == "scaled" else 2, file_of(item.nodeid))

        items.sort(key=order)


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict:
    return {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(autouse=True)
def _close_the_tests_tabs(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every browser context a test (or its function fixtures) opened is closed when it ends.

    Tests open contexts for their people and tabs and most never closed them: the browser is the
    session's, so they stayed open to the end, each page rendering, reporting every second and
    holding a socket to its app. Late in a clean-clone run 115 renderers were alive and the load
    average was 27 on 2 cores, which slowed every later test and made the app's timings unlike
    a real user's. No fixture wider than a test opens a context (so none is closed under one).
    """
    if "browser" not in request.fixturenames:
        yield
        return
    browser: Browser = request.getfixturevalue("browser")
    before = set(browser.contexts)
    yield
    for context in browser.contexts:
        if context not in before:
            # Each page first, as a user closes a tab: the headless shell fires no `pagehide` for
            # the pages of a closed context, so their tabs never said they closed and the app
            # counted them open for `TAB_GONE_S` (a doctor run right after one saw a tab that
            # never confirmed its change).
            for page in context.pages:
                page.close()
            context.close()


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
