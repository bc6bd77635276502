"""Results as heavy as a real generator's (1024-px PNG photos of ~2.4 MB), drawn from right-sized copies.

Its own app, with `LOCAL_PROVIDER_PHOTO_WEIGHT=true`: with 10 KB drawings nothing showed what
images cost.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, Route, expect

from e2e.helpers import RESULT_ALT, add_text_node, job_rows, open_canvas, set_prompt
from e2e.server import AppServer
from e2e.test_accounts import sign_up

DONE = 30_000
COPIES = (".w256.webp", ".w512.webp", ".w768.webp")


@pytest.fixture(scope="module")
def photo_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    server = AppServer(
        data_dir=Path(tmp_path_factory.mktemp("photos")),
        env={"LOCAL_PROVIDER_PHOTO_WEIGHT": "true", "LOCAL_PROVIDER_DELAY_S": "0.5"},
        private_workdirs=True,
    )
    server.start()
    yield server
    server.stop()


def _generate(page: Page, prompt: str) -> Locator:
    node = add_text_node(page, prompt)
    node.get_by_role("button", name="Generate").click()
    expect(job_rows(page).first).to_have_attribute("data-status", "completed", timeout=DONE)
    return node


def _loaded(image: Locator) -> dict:
    image.page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    return image.evaluate(
        "(img) => ({natural: img.naturalWidth, drawn: img.getBoundingClientRect().width, current: img.currentSrc,"
        " src: img.getAttribute('src'), width: img.getAttribute('width'), height: img.getAttribute('height')})"
    )


def test_a_card_draws_a_copy_and_download_gives_the_original(browser: Browser, photo_app: AppServer) -> None:
    page = browser.new_page()
    open_canvas(page, photo_app.url)
    node = _generate(page, f"a harbour at noon {uuid.uuid4().hex[:6]}")
    shown = _loaded(node.get_by_alt_text(RESULT_ALT))
    assert shown["current"].endswith(COPIES)  # a copy, never the 2.4 MB original
    assert 0 < shown["natural"] <= 2 * shown["drawn"]
    assert (shown["width"], shown["height"]) == ("1024", "1024")  # its box is reserved before it loads
    original = shown["src"]
    assert re.fullmatch(r"/media/[0-9a-f]{64}\.png", original)

    node.get_by_alt_text(RESULT_ALT).click()
    dialog = page.get_by_role("dialog")
    large = dialog.get_by_alt_text(re.compile("^Enlarged result"))
    expect(large).to_have_attribute("src", original, timeout=DONE)  # the 768-px copy first, then the original
    with page.expect_download() as download:
        dialog.get_by_role("link", name="Download").click()
    data = Path(download.value.path()).read_bytes()
    assert hashlib.sha256(data).hexdigest() == original.removeprefix("/media/").removesuffix(".png")
    assert len(data) > 1_000_000
    page.close()


def test_the_placeholder_paints_before_any_image_arrives(browser: Browser, photo_app: AppServer) -> None:
    page = browser.new_page()
    held: list[Route] = []
    page.route(re.compile(r".*/media/.*"), lambda route: held.append(route))
    open_canvas(page, photo_app.url)
    node = _generate(page, f"a field of poppies {uuid.uuid4().hex[:6]}")
    image = node.get_by_alt_text(RESULT_ALT)
    expect(image).to_be_attached()
    _expect_placeholder(image)
    assert held  # the browser did ask for the image
    for route in list(held):
        route.continue_()
    held.clear()
    first = _loaded(image)["src"]
    expect(image).to_have_css("background-image", "none")

    # A new result on the same node: its own placeholder again, not the last image's load state.
    set_prompt(node, f"a field of tulips {uuid.uuid4().hex[:6]}")
    node.get_by_role("button", name="Generate").click()
    expect(job_rows(page).first).not_to_have_attribute("data-status", "completed")
    expect(job_rows(page).first).to_have_attribute("data-status", "completed", timeout=DONE)
    expect(image).not_to_have_attribute("src", first)
    _expect_placeholder(image)
    # The history strip's new entry too: its ThumbHash came with the row, as the card's did.
    history = node.get_by_test_id("node-history").get_by_role("img")
    expect(history).to_have_count(2)
    _expect_placeholder(history.first)
    for route in held:
        route.continue_()
    page.unroute(re.compile(r".*/media/.*"))  # what the page asks for next goes straight through
    _loaded(image)
    page.close()


def test_another_tab_asks_for_a_new_results_copy_once(browser: Browser, photo_app: AppServer) -> None:
    """The tab fetches the copy as the change arrives (room_store.js, `preloadResults`, whose
    choice tests/js checks) and its card draws that same request: the copy the card shows is
    asked for once, the original never."""
    page = browser.new_page()
    open_canvas(page, photo_app.url)
    other = browser.new_page()
    open_canvas(other, page.url)
    asked: list[str] = []
    other.on("request", lambda request: asked.append(request.url) if "/media/" in request.url else None)
    node = _generate(page, f"a kite over dunes {uuid.uuid4().hex[:6]}")
    original = str(node.get_by_alt_text(RESULT_ALT).get_attribute("src"))
    shown = _loaded(other.locator(f'[data-testid=node-result][src="{original}"]'))
    copies = [url for url in asked if url.startswith(photo_app.url + original)]
    thumbnail = photo_app.url + original + COPIES[0]  # the queue row's 32-px thumbnail, if it loaded yet
    # One request, the preload's, drew the card; nothing else was fetched for it, the original never.
    assert [url for url in copies if url != thumbnail] == [shown["current"]], asked
    page.close()
    other.close()


def _expect_placeholder(image: Locator) -> None:
    painted = image.evaluate(
        "(img) => ({background: getComputedStyle(img).backgroundImage, natural: img.naturalWidth,"
        " height: img.getBoundingClientRect().height, width: img.getBoundingClientRect().width})"
    )
    assert painted["background"].startswith('url("data:image/png')
    assert painted["natural"] == 0  # nothing fetched yet: the placeholder came with the row
    assert painted["height"] == pytest.approx(painted["width"], abs=2)  # a square photo's square box


def test_a_stranger_gets_no_copy_of_an_image(browser: Browser, photo_app: AppServer) -> None:
    owner = browser.new_context().new_page()
    sign_up(owner, photo_app.url, f"owner-{uuid.uuid4().hex[:8]}@example.com")
    node = _generate(owner, f"a private lighthouse {uuid.uuid4().hex[:6]}")
    original = str(node.get_by_alt_text(RESULT_ALT).get_attribute("src"))
    for suffix in ("", *COPIES):
        assert owner.request.get(photo_app.url + original + suffix).status == 200
    stranger = browser.new_context().new_page()
    sign_up(stranger, photo_app.url, f"stranger-{uuid.uuid4().hex[:8]}@example.com")
    for suffix in ("", *COPIES):
        refused = stranger.request.get(photo_app.url + original + suffix)
        assert (refused.status, refused.text()) == (404, "not found")
    owner.context.close()
    stranger.context.close()
