"""Live progress in every tab: a rising progress bar and previews before the result, a provider's queue position."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from e2e.fakes.comfyui_server import CHECKPOINTS
from e2e.helpers import RESULT_ALT, job_rows, model_node, nodes, open_canvas
from e2e.server import AppServer, FakeProviderServer

DONE = 30_000

pytestmark = pytest.mark.usefixtures("fresh_fakes")

#: Records, in the page, every state of every progress bar and preview as it happens: a local job
#: runs for about a second, too short to catch its steps by polling from the test.
RECORDER = """() => {
  const seen = (window.__progressSeen = []);
  const look = () => {
    for (const bar of document.querySelectorAll('[role=progressbar]'))
      seen.push(['bar', bar.dataset.testid, bar.getAttribute('aria-valuenow')]);
    if (document.querySelector('img[alt^="Result"]')) seen.push(['result']);
  };
  new MutationObserver(look).observe(document.body, { subtree: true, childList: true, attributes: true });
  document.addEventListener('load', (e) => {
    if (e.target.alt && e.target.alt.startsWith('Preview')) seen.push(['preview', e.target.alt, e.target.naturalWidth]);
  }, true);
}"""


@pytest.fixture(scope="module")
def fake_comfyui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeProviderServer]:
    server = FakeProviderServer("comfyui_server", tmp_path_factory.mktemp("comfyui") / "comfyui.log", "unused")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sampling_app(tmp_path_factory: pytest.TempPathFactory, fake_comfyui: FakeProviderServer) -> Iterator[AppServer]:
    """An app whose local renders take 4 s (3 s of them sampling): a dozen steps to see, whatever
    the machine's load, where the suite's app (1.5 s) leaves a slow browser a preview or two;
    with a ComfyUI (its fake), whose checkpoints it lists as it starts."""
    env = {"LOCAL_PROVIDER_DELAY_S": "4", "COMFYUI_URL": fake_comfyui.url}
    server = AppServer(data_dir=Path(tmp_path_factory.mktemp("sampling")), env=env, private_workdirs=True)
    server.start()
    yield server
    server.stop()


def new_project(browser: Browser, app: AppServer) -> str:
    page = browser.new_page()
    open_canvas(page, app.url)
    before = page.url
    page.get_by_role("button", name="New project").click()
    page.wait_for_url(lambda u: u != before and re.search(r"/p/\d+$", u) is not None)
    url = page.url
    page.close()
    return url


def two_contexts(browser: Browser, url: str) -> tuple[Page, Page]:
    """One tab in each of two browser contexts (two people), both on `url`."""
    pages = (browser.new_context().new_page(), browser.new_context().new_page())
    for page in pages:
        open_canvas(page, url)
    return pages


@pytest.mark.parametrize("model", ["local/sketch", f"comfyui/{CHECKPOINTS[0]}"])
def test_a_job_shows_a_rising_bar_and_previews_in_the_other_context_before_its_result(
    browser: Browser, sampling_app: AppServer, fake_comfyui: FakeProviderServer, model: str
) -> None:
    fake_comfyui.configure(steps=12, step_s=0.25)
    a, b = two_contexts(browser, new_project(browser, sampling_app))
    node = model_node(a, "a lighthouse in fog", model)
    expect(nodes(b)).to_have_count(1)
    b.evaluate(RECORDER)
    node.get_by_role("button", name="Generate").click()
    expect(nodes(b).first.get_by_alt_text(RESULT_ALT)).to_be_visible(timeout=DONE)
    expect(nodes(b).first.get_by_role("progressbar")).to_have_count(0)  # gone with the job

    seen = b.evaluate("window.__progressSeen")
    result_at = next(i for i, entry in enumerate(seen) if entry[0] == "result")
    for testid in ("node-progressbar", "job-progressbar"):
        values = [int(entry[2]) for entry in seen[:result_at] if entry[:2] == ["bar", testid] and entry[2] is not None]
        steps = [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]
        assert len(steps) >= 2 and steps == sorted(steps) and steps[0] > 0 and steps[-1] <= 100, (testid, steps)
    previews = [entry for entry in seen[:result_at] if entry[0] == "preview"]
    assert previews and all(width > 0 for _, _, width in previews), previews  # drawn, and served to this person
    assert previews[0][1].startswith("Preview of #")


def test_a_fal_job_waiting_in_its_queue_shows_its_position_in_the_other_context(
    browser: Browser, project_url: str, fake_fal: FakeProviderServer
) -> None:
    fake_fal.configure(queue_s=60)
    a, b = two_contexts(browser, project_url)
    for prompt in ("first in line", "second in line"):
        model_node(a, prompt, "fal-ai/nano-banana").get_by_role("button", name="Generate").click()
        expect(job_rows(a).first).to_contain_text("fal-ai/nano-banana")
    second = nodes(b).nth(1)
    expect(second.get_by_text("position 2")).to_be_visible(timeout=DONE)
    expect(nodes(b).first.get_by_text("position 1")).to_be_visible()
    expect(job_rows(b).first.get_by_test_id("job-position")).to_have_text("position 2")
    bar = second.get_by_role("progressbar")
    expect(bar).to_be_visible()
    expect(bar).not_to_have_attribute("aria-valuenow", r".*")  # no percent while queued: indeterminate
    # ... and still: an endless animation costs every tab watching a frame every 16 ms.
    running = "(bar) => bar.getAnimations({subtree: true}).filter((a) => a.playState === 'running').length"
    assert bar.evaluate(running) == 0
    elapsed = second.get_by_test_id("node-elapsed")
    first_reading = elapsed.inner_text()
    expect(elapsed).not_to_have_text(first_reading, timeout=5_000)  # it ticks
    for row in range(2):
        job_rows(b).nth(row).get_by_role("button", name="Cancel").click()
    for page in (a, b):
        expect(page.locator("[data-testid=queue-row][data-status=cancelled]")).to_have_count(2)
        expect(page.get_by_role("progressbar")).to_have_count(0)
