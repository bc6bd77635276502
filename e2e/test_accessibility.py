"""The canvas as a new user meets it: axe-core finds nothing serious, and a phone-sized
window puts the queue below the nodes instead of on top of them.

axe-core comes from the npm registry (scripts/setup.sh installs it into .tools) and is
injected into the page as it is: the audit is the engine's, not ours.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from e2e.helpers import RESULT_ALT, add_edit_node, add_text_node, job_rows, model_node, nodes, open_canvas, queue
from e2e.server import FakeProviderServer

AXE = Path(__file__).resolve().parent.parent / ".tools" / "node_modules" / "axe-core" / "axe.min.js"
DONE = 30_000
PHONE = {"width": 390, "height": 844}

pytestmark = pytest.mark.usefixtures("fresh_fakes")


def busy_canvas(browser: Browser, project_url: str, fake_kie: FakeProviderServer) -> Page:
    """Both node kinds; a queue with a finished, a failed and a running job; an open timeline."""
    fake_kie.configure(delay_s=600)  # stays running for the whole test
    page = browser.new_context().new_page()
    open_canvas(page, project_url)
    source = add_text_node(page, "a lighthouse at dusk")
    source.get_by_role("button", name="Generate").click()
    expect(source.get_by_alt_text(RESULT_ALT)).to_be_visible(timeout=DONE)
    add_edit_node(page, "make it stormy", "local/sketch-edit")
    add_text_node(page, "this one will [fail]").get_by_role("button", name="Generate").click()
    model_node(page, "a slow kite", "google/nano-banana").get_by_role("button", name="Generate").click()
    for status in ("completed", "failed"):
        expect(queue(page).locator(f"[data-testid=queue-row][data-status={status}]")).to_have_count(1, timeout=DONE)
    finished = queue(page).locator("[data-testid=queue-row][data-status=completed]")
    expect(finished.get_by_test_id("job-thumbnail")).to_have_attribute(
        "src", source.get_by_alt_text(RESULT_ALT).get_attribute("src") or ""
    )
    expect(queue(page).locator("[data-testid=queue-row][data-status=submitted]")).to_have_count(1, timeout=DONE)
    job_rows(page).last.get_by_role("button", name="Timeline").click()
    expect(page.get_by_test_id("timeline-step").first).to_be_visible()
    return page


def serious_violations(page: Page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['impact']} {v['id']}: {v['help']} ({len(v['nodes'])}x, e.g. {v['nodes'][0]['target']})"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_axe_finds_no_serious_violation_on_a_busy_canvas(
    browser: Browser, project_url: str, fake_kie: FakeProviderServer
) -> None:
    page = busy_canvas(browser, project_url, fake_kie)
    assert serious_violations(page) == []
    page.set_viewport_size(PHONE)
    assert serious_violations(page) == []


def test_at_phone_width_the_queue_is_below_the_nodes_and_overlaps_none(
    browser: Browser, project_url: str, fake_kie: FakeProviderServer
) -> None:
    page = busy_canvas(browser, project_url, fake_kie)
    page.set_viewport_size(PHONE)
    cards = [box for card in nodes(page).all() if (box := card.bounding_box())]
    rows = [box for row in queue(page).locator("[data-testid=queue-row]").all() if (box := row.bounding_box())]
    assert len(cards) == 4 and len(rows) == 3
    lowest_card = max(card["y"] + card["height"] for card in cards)
    for row in rows:
        assert row["y"] >= lowest_card, f"a queue row at y={row['y']} is beside or over a node card"
        for card in cards:
            apart = (
                row["x"] + row["width"] <= card["x"]
                or card["x"] + card["width"] <= row["x"]
                or row["y"] + row["height"] <= card["y"]
                or card["y"] + card["height"] <= row["y"]
            )
            assert apart, f"queue row {row} overlaps node card {card}"
    for card in cards:
        assert card["x"] >= 0 and card["x"] + card["width"] <= PHONE["width"], f"node card {card} is cut off"
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "the page scrolls sideways"
