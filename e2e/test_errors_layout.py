"""Errors where they happen, example prompts, and the phone layout (390 px)."""

from __future__ import annotations

from playwright.sync_api import Browser, expect

from e2e.helpers import add_text_node, job_rows, nodes, open_canvas, open_check_realtime, queue

PHONE = {"width": 390, "height": 844}


def test_an_empty_project_offers_examples_and_a_prompt_says_what_it_lacks(browser: Browser, project_url: str) -> None:
    a = browser.new_context().new_page()
    open_canvas(a, project_url)
    b = browser.new_context().new_page()
    open_canvas(b, project_url)
    examples = a.get_by_test_id("examples").get_by_role("button")
    expect(examples).to_have_count(3)
    prompt = examples.first.inner_text()
    examples.first.click()
    expect(nodes(b).first.get_by_label("Prompt")).to_have_value(prompt)  # every tab sees the new node
    expect(b.get_by_test_id("examples")).to_have_count(0)

    a.get_by_role("button", name="Add text-to-image node").click()
    empty = nodes(a).nth(1)
    expect(empty.get_by_test_id("prompt-empty")).to_have_text("Write a prompt to generate.")
    expect(empty.get_by_role("button", name="Generate")).to_have_attribute("title", "Write a prompt first")
    field = empty.get_by_label("Prompt")
    field.fill("x" * 4100)
    field.press("Tab")
    expect(empty.get_by_test_id("prompt-empty")).to_have_count(0)
    expect(empty.get_by_test_id("prompt-count")).to_have_text("4100 / 5000")
    expect(nodes(b).nth(1).get_by_test_id("prompt-count")).to_have_text("4100 / 5000")


def test_an_upload_error_says_upload_and_what_it_takes(browser: Browser, project_url: str) -> None:
    page = browser.new_context().new_page()
    open_canvas(page, project_url)
    page.get_by_role("button", name="Add image edit node").click()
    nodes(page).first.get_by_role("button", name="Upload images").click()
    page.locator("#node-input-upload input[type=file]").set_input_files(
        files=[{"name": "broken.png", "mimeType": "image/png", "buffer": b"not an image at all"}]
    )
    expect(page.get_by_text("Upload of broken.png failed")).to_contain_text("Accepted: PNG, JPEG or WebP")


def test_the_phone_layout_scrolls_only_down_and_its_controls_are_touch_sized(
    browser: Browser, project_url: str
) -> None:
    page = browser.new_context(viewport=PHONE).new_page()
    open_canvas(page, project_url)
    # A long project name (a select is as wide as its longest option) and the example prompts
    # widened the page past 390 px in a CI run.
    page.get_by_label("Project name").fill("A project whose name is much longer than a phone is wide")
    expect(page.get_by_test_id("examples")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.get_by_role("button", name="Add text-to-image node").click()
    expect(nodes(page)).to_have_count(1)
    expect(page.get_by_test_id("examples")).to_have_count(0)
    expect(nodes(page).first.get_by_label("Prompt")).to_be_focused()  # the page settled on the new node
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    # The toolbar folds behind `Menu`: the first node is within the first screen.
    expect(nodes(page).first).to_be_in_viewport()
    page.evaluate("window.scrollTo(0, 0)")
    box = nodes(page).first.bounding_box()
    assert box is not None and box["y"] + 100 < PHONE["height"], box
    menu = page.get_by_role("button", name="Menu")
    expect(page.get_by_role("button", name="Run all stale")).to_be_hidden()
    expect(menu).to_have_attribute("aria-expanded", "false")
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    for name in ("New project", "Share", "Run all stale", "Diagnostics"):
        expect(page.get_by_role("button", name=name)).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    small = page.evaluate(
        """() => [...document.querySelectorAll('header button, main button, header select, main select')]
            .filter((e) => e.offsetParent !== null)
            .map((e) => [e.getAttribute('aria-label') || e.textContent.trim(), e.getBoundingClientRect().height])
            .filter(([, h]) => h < 44)"""
    )
    assert small == [], small


def test_the_timeline_shows_user_steps_and_internal_ones_under_details(browser: Browser, project_url: str) -> None:
    page = browser.new_context().new_page()
    open_canvas(page, project_url)
    add_text_node(page, "a timeline of a kite").get_by_role("button", name="Generate").click()
    expect(job_rows(page).first).to_have_attribute("data-status", "completed", timeout=20_000)
    job_rows(page).first.get_by_role("button", name="Timeline").click()
    steps = page.get_by_test_id("timeline-step")
    expect(steps.filter(has_text="status.completed")).to_have_count(1)
    expect(steps.filter(has_text="generate.clicked")).to_have_count(1)
    expect(steps.filter(has_text="change.published")).to_have_count(0)
    queue(page).get_by_role("button", name="Details").click()
    expect(steps.filter(has_text="change.published")).not_to_have_count(0)


def test_the_toolbar_fits_one_line_at_1440_px_and_keeps_check_realtime_in_diagnostics(
    browser: Browser, project_url: str
) -> None:
    page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
    open_canvas(page, project_url)
    page.get_by_label("Project name").fill("A project whose name is rather long for a toolbar")
    expect(page.get_by_role("button", name="Menu")).to_be_hidden()  # nothing folded at this width
    rows = page.evaluate(
        """() => [...document.querySelectorAll('header button, header select, header input, header label')]
            .filter((e) => e.offsetParent !== null)
            .map((e) => { const r = e.getBoundingClientRect(); return Math.round(r.top + r.height / 2); })"""
    )
    assert len(rows) >= 10 and max(rows) - min(rows) <= 4, rows  # one line: every control on one centre
    expect(page.get_by_role("button", name="Check realtime")).to_have_count(0)  # in the menu, not the toolbar
    open_check_realtime(page)
