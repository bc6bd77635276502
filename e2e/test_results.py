"""Results: the lightbox says what made a result, steps through the node's results with the
arrow keys, compares two; `Use this result` brings back its prompt; stale images are dimmed."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, expect

from e2e.helpers import add_text_node, nodes, open_canvas, queue, set_prompt


def test_the_lightbox_details_steps_compares_and_uses_a_result_for_everyone(browser: Browser, project_url: str) -> None:
    a = browser.new_context().new_page()
    open_canvas(a, project_url)
    b = browser.new_context().new_page()
    open_canvas(b, project_url)
    node = add_text_node(a, "a pale moon")
    done = queue(a).locator("[data-job-id][data-status=completed]")
    node.get_by_role("button", name="Generate").click()
    expect(done).to_have_count(1, timeout=20_000)
    set_prompt(node, "a red sun")
    result_b = nodes(b).first.get_by_test_id("node-result")
    expect(result_b).to_have_attribute("data-stale", "true")  # dimmed while it shows an older prompt
    node.get_by_role("button", name="Generate").click()
    expect(done).to_have_count(2, timeout=20_000)
    expect(result_b).to_have_attribute("data-stale", "false")
    history_b = nodes(b).first.get_by_test_id("node-history").get_by_role("button")
    expect(history_b).to_have_count(2)
    expect(history_b.first).to_have_attribute("aria-current", "true")  # the newest is current
    expect(history_b.last).to_have_attribute("aria-current", "false")

    node.get_by_title("Open the result large").click()
    dialog = a.get_by_role("dialog")
    details = dialog.get_by_test_id("result-details")
    expect(details).to_contain_text("a red sun")
    for shown in ("local/sketch", "1:1", "local"):
        expect(details).to_contain_text(shown)
    expect(details).to_contain_text(re.compile(r"Seed\s*\d+"))
    a.keyboard.press("ArrowRight")
    expect(details).to_contain_text("a pale moon")
    expect(dialog).to_contain_text("An earlier result of the node")
    a.keyboard.press("ArrowLeft")
    expect(details).to_contain_text("a red sun")
    a.keyboard.press("ArrowRight")
    expect(details).to_contain_text("a pale moon")
    dialog.get_by_role("button", name="Compare").click()
    expect(dialog.get_by_test_id("result-compare").get_by_role("img")).to_have_count(2)

    dialog.get_by_role("button", name="Use this result").click()
    expect(nodes(b).first.get_by_label("Prompt")).to_have_value("a pale moon")  # its prompt came back
    expect(nodes(b).first.get_by_test_id("node-fresh")).to_be_attached()  # so the node is not stale
    expect(history_b.last).to_have_attribute("aria-current", "true")
