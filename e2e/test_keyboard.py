"""Keyboard: shortcuts press the buttons they name, and focus goes where the user is."""

from __future__ import annotations

from playwright.sync_api import Browser, expect

from e2e.helpers import RESULT_ALT, add_text_node, job_rows, nodes, open_canvas


def test_ctrl_enter_in_a_prompt_generates_with_the_text_just_typed_and_every_tab_sees_it(
    browser: Browser, project_url: str
) -> None:
    a = browser.new_context().new_page()
    open_canvas(a, project_url)
    b = browser.new_context().new_page()
    open_canvas(b, project_url)
    a.get_by_role("button", name="Add text-to-image node").click()
    prompt = nodes(a).first.get_by_label("Prompt")
    expect(prompt).to_be_focused()  # a new node's Prompt takes the focus
    prompt.press_sequentially("a kite over dunes")
    prompt.press("Control+Enter")  # no blur first: the shortcut sends the text, then Generate
    expect(job_rows(a)).to_have_count(1)
    expect(job_rows(b)).to_have_count(1)
    expect(nodes(b).first.get_by_label("Prompt")).to_have_value("a kite over dunes")
    expect(prompt).to_be_focused()  # the cursor stays where it was
    expect(nodes(b).first.get_by_test_id("node-fresh")).to_be_attached(timeout=20_000)  # ran with that text


def test_ctrl_shift_enter_runs_all_stale(browser: Browser, project_url: str) -> None:
    page = browser.new_context().new_page()
    open_canvas(page, project_url)
    first = add_text_node(page, "a red door")
    add_text_node(page, "a blue door")
    first.get_by_label("Prompt").press("Control+Shift+Enter")
    expect(job_rows(page)).to_have_count(2)


def test_move_buttons_stop_at_the_ends_and_the_lightbox_returns_focus(browser: Browser, project_url: str) -> None:
    page = browser.new_context().new_page()
    open_canvas(page, project_url)
    first = add_text_node(page, "a small boat")
    expect(first.get_by_role("button", name="Move up")).to_be_disabled()
    expect(first.get_by_role("button", name="Move down")).to_be_disabled()  # alone: first and last
    second = add_text_node(page, "a large ship")
    expect(first.get_by_role("button", name="Move down")).to_be_enabled()
    expect(second.get_by_role("button", name="Move up")).to_be_enabled()
    expect(second.get_by_role("button", name="Move down")).to_be_disabled()

    first.get_by_role("button", name="Generate").click()
    expect(first.get_by_alt_text(RESULT_ALT)).to_be_visible(timeout=20_000)
    opener = first.get_by_title("Open the result large")
    opener.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(opener).to_be_focused()
