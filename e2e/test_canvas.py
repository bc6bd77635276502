"""Projects and edit nodes, as a user lays out a canvas."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Browser, expect

from e2e.helpers import RESULT_ALT, add_text_node, job_rows, nodes, open_canvas, set_prompt, two_tabs
from e2e.server import AppServer


def test_edit_node_uses_another_nodes_result_and_an_upload(browser: Browser, project_url: str, tmp_path: Path) -> None:
    a, b = two_tabs(browser, project_url)
    source = add_text_node(a, "a mountain lake")
    source.get_by_role("button", name="Generate").click()
    expect(source.get_by_alt_text(RESULT_ALT)).to_be_visible(timeout=20_000)

    a.get_by_role("button", name="Add image edit node").click()
    expect(nodes(a)).to_have_count(2)
    edit = nodes(a).nth(1)
    expect(edit.get_by_label("Model")).to_have_value("local/sketch-edit")
    set_prompt(edit, "turn it into night")
    edit.get_by_label("Add input from node").select_option(index=1)
    expect(edit.get_by_alt_text("Input image")).to_have_count(1)

    upload = tmp_path / "upload.png"
    upload.write_bytes(source.get_by_alt_text(RESULT_ALT).screenshot())
    with a.expect_file_chooser() as chooser:
        edit.get_by_role("button", name="Upload images").click()
    chooser.value.set_files(str(upload))
    expect(edit.get_by_alt_text("Input image")).to_have_count(2)
    expect(nodes(b).nth(1).get_by_alt_text("Input image")).to_have_count(2)

    edit.get_by_role("button", name="Generate").click()
    for page in (a, b):
        expect(job_rows(page)).to_have_count(2)
        expect(job_rows(page).first).to_contain_text("local/sketch-edit")
        expect(job_rows(page).first).to_have_attribute("data-status", "completed", timeout=20_000)
        expect(nodes(page).nth(1).get_by_alt_text(RESULT_ALT)).to_be_visible()
    source_src = source.get_by_alt_text(RESULT_ALT).get_attribute("src")
    edit_src = nodes(b).nth(1).get_by_alt_text(RESULT_ALT).get_attribute("src")
    assert source_src != edit_src
    assert edit_src and edit_src.startswith("/media/")


def test_node_delete_and_model_choice_reach_the_other_tab(browser: Browser, project_url: str) -> None:
    a, b = two_tabs(browser, project_url)
    add_text_node(a, "first")
    add_text_node(a, "second")
    expect(nodes(b)).to_have_count(2)
    expect(nodes(b).nth(0).get_by_label("Model")).to_contain_text("local/sketch")
    nodes(b).nth(0).get_by_role("button", name="Delete node").click()
    for page in (a, b):
        expect(nodes(page)).to_have_count(1)
        expect(nodes(page).get_by_label("Prompt")).to_have_value("second")


def test_the_aspect_ratio_picker_offers_the_chosen_models_own_ratios(browser: Browser, project_url: str) -> None:
    a, b = two_tabs(browser, project_url)
    node = add_text_node(a, "a wide valley")
    picker = node.get_by_label("Aspect ratio")
    expect(picker.locator("option[value='21:9']")).to_have_count(0)  # the local model draws no 21:9
    node.get_by_label("Model").select_option("google/nano-banana")
    expect(picker.locator("option[value='21:9']")).to_have_count(1)
    picker.select_option("21:9")
    expect(nodes(b).get_by_label("Aspect ratio")).to_have_value("21:9")
    # Back to a model that cannot draw it: the node falls back to a ratio it can, in every tab.
    node.get_by_label("Model").select_option("local/sketch")
    for page in (a, b):
        expect(nodes(page).get_by_label("Aspect ratio")).to_have_value("1:1")


def test_projects_are_created_renamed_switched_and_survive_a_restart(browser: Browser, app_server: AppServer) -> None:
    context = browser.new_context()
    a, b, elsewhere = context.new_page(), context.new_page(), context.new_page()
    open_canvas(elsewhere, app_server.url)
    open_canvas(a, app_server.url)
    before = a.url
    a.get_by_role("button", name="New project").click()
    a.wait_for_url(lambda u: u != before)
    project_url = a.url
    open_canvas(b, project_url)

    name = a.get_by_label("Project name")
    name.fill("Holiday <b>cards</b> ✨")
    name.press("Tab")
    expect(b.get_by_label("Project name")).to_have_value("Holiday <b>cards</b> ✨")
    expect(b.get_by_label("Project", exact=True)).to_contain_text("Holiday <b>cards</b> ✨")  # shown as text
    elsewhere.get_by_label("Project", exact=True).focus()  # opened before: learns of it from the picker
    expect(elsewhere.get_by_label("Project", exact=True)).to_contain_text("Holiday <b>cards</b> ✨")
    add_text_node(a, "a snowy cabin")
    nodes(a).get_by_role("button", name="Generate").click()
    expect(nodes(b).get_by_alt_text(RESULT_ALT)).to_be_visible(timeout=20_000)

    b.get_by_label("Project", exact=True).select_option(index=0)
    b.wait_for_url(lambda u: u != project_url)
    expect(nodes(b).get_by_label("Prompt").filter(has_text="a snowy cabin")).to_have_count(0)

    app_server.stop()
    app_server.start()
    reopened = browser.new_context().new_page()
    open_canvas(reopened, project_url)
    expect(reopened.get_by_label("Project name")).to_have_value("Holiday <b>cards</b> ✨")
    expect(nodes(reopened).get_by_label("Prompt")).to_have_value("a snowy cabin")
    expect(nodes(reopened).get_by_alt_text(RESULT_ALT)).to_be_visible()
    expect(job_rows(reopened).first).to_have_attribute("data-status", "completed")
    expect(reopened.get_by_label("Project", exact=True)).to_contain_text(re.compile("My first project"))


def test_two_tabs_editing_one_prompt_converge_on_the_last_write(browser: Browser, project_url: str) -> None:
    a, b = two_tabs(browser, project_url)
    add_text_node(a, "start")
    prompt_a, prompt_b = nodes(a).get_by_label("Prompt"), nodes(b).get_by_label("Prompt")
    expect(prompt_b).to_have_value("start")
    prompt_a.fill("written in tab A <script>alert(1)</script>")
    prompt_b.fill("written in tab B ✨")
    prompt_a.press("Tab")
    prompt_b.press("Tab")
    expect(prompt_a).to_have_value("written in tab B ✨")  # the last write wins, everywhere
    expect(prompt_b).to_have_value("written in tab B ✨")
    reopened = browser.new_page()
    open_canvas(reopened, project_url)
    expect(nodes(reopened).get_by_label("Prompt")).to_have_value("written in tab B ✨")


def test_markup_in_prompts_and_names_is_shown_as_text(browser: Browser, project_url: str) -> None:
    page = browser.new_page()
    open_canvas(page, project_url)
    hostile = '<img src="x" onerror="window.__pwned = 1"> 東京 🌸'
    page.get_by_label("Project name").fill(hostile)
    page.get_by_label("Project name").press("Tab")
    node = add_text_node(page, hostile)
    node.get_by_role("button", name="Generate").click()
    expect(job_rows(page).first).to_have_attribute("data-status", "completed", timeout=30_000)
    page.reload()
    open_canvas(page, project_url)
    expect(page.get_by_label("Project name")).to_have_value(hostile)
    expect(nodes(page).get_by_label("Prompt")).to_have_value(hostile)
    expect(page.get_by_label("Project", exact=True)).to_contain_text("東京 🌸")
    assert page.evaluate("window.__pwned") is None
    assert page.locator('img[src="x"]').count() == 0
