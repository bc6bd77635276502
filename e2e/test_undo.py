"""Undo: a delete's toast, and Ctrl/Cmd+Z outside text fields, take an edit back for everyone."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect

from e2e.helpers import RESULT_ALT, add_text_node, job_rows, nodes, open_canvas, set_prompt


def _outside_fields(page: Page) -> None:
    """Put the focus on no text field (Ctrl+Z inside one undoes typing, as everywhere)."""
    page.get_by_role("heading", name="Canvas").click()


def test_a_deleted_node_comes_back_with_its_history_in_every_tab(browser: Browser, project_url: str) -> None:
    a = browser.new_context().new_page()
    open_canvas(a, project_url)
    b = browser.new_context().new_page()
    open_canvas(b, project_url)
    node = add_text_node(a, "a heron in reeds")
    node.get_by_role("button", name="Generate").click()
    expect(job_rows(a).first).to_have_attribute("data-status", "completed", timeout=20_000)
    expect(nodes(b).first.get_by_alt_text(RESULT_ALT)).to_be_visible()

    nodes(a).first.get_by_role("button", name="Delete node").click()
    expect(nodes(b)).to_have_count(0)
    expect(job_rows(b).first).to_contain_text("#0")  # its job stays, detached
    a.get_by_role("region", name="Notifications alt+T").get_by_role("button", name="Undo").click()
    for page in (a, b):
        expect(nodes(page)).to_have_count(1)
        expect(nodes(page).first.get_by_label("Prompt")).to_have_value("a heron in reeds")
        expect(nodes(page).first.get_by_alt_text(RESULT_ALT)).to_be_visible()
        expect(job_rows(page).first).to_contain_text("#")
        expect(job_rows(page).first).not_to_contain_text("#0")


def test_ctrl_z_outside_fields_undoes_a_prompt_and_a_move_for_everyone(browser: Browser, project_url: str) -> None:
    a = browser.new_context().new_page()
    open_canvas(a, project_url)
    b = browser.new_context().new_page()
    open_canvas(b, project_url)
    first = add_text_node(a, "first words")
    add_text_node(a, "second")
    set_prompt(first, "rewritten words")
    expect(nodes(b).first.get_by_label("Prompt")).to_have_value("rewritten words")

    _outside_fields(a)
    a.keyboard.press("Control+z")
    expect(nodes(b).first.get_by_label("Prompt")).to_have_value("first words")
    expect(nodes(a).first.get_by_label("Prompt")).to_have_value("first words")

    nodes(a).first.get_by_role("button", name="Move down").click()
    expect(nodes(b).first.get_by_label("Prompt")).to_have_value("second")
    _outside_fields(a)
    a.keyboard.press("Control+z")
    expect(nodes(b).first.get_by_label("Prompt")).to_have_value("first words")
    expect(nodes(a).first.get_by_label("Prompt")).to_have_value("first words")
