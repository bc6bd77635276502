"""Batches and seeds: `Images` makes that many jobs per Generate, together in the node; `Seed`."""

from __future__ import annotations

from playwright.sync_api import Browser, expect

from e2e.helpers import RESULT_ALT, add_text_node, job_rows, nodes, open_canvas


def test_images_per_generate_and_a_chosen_seed_reach_every_tab(browser: Browser, project_url: str) -> None:
    a = browser.new_context().new_page()
    open_canvas(a, project_url)
    b = browser.new_context().new_page()
    open_canvas(b, project_url)
    node = add_text_node(a, "three foxes in snow")
    node.get_by_label("Images").select_option("3")
    expect(nodes(b).first.get_by_label("Images")).to_have_value("3")
    node.get_by_role("button", name="Generate").click()
    for page in (a, b):
        expect(job_rows(page)).to_have_count(3)
        completed = page.get_by_role("region", name="Queue").locator("[data-job-id][data-status=completed]")
        expect(completed).to_have_count(3, timeout=30_000)
        expect(nodes(page).first.get_by_alt_text(RESULT_ALT)).to_be_visible()
        expect(nodes(page).first.get_by_test_id("node-history").get_by_role("img")).to_have_count(3)
    seeds = job_rows(a).get_by_test_id("job-seed").all_inner_texts()
    assert len(set(seeds)) == 3, seeds  # random by default, one per job

    node.get_by_label("Images").select_option("1")
    seed = node.get_by_label("Seed")
    seed.fill("42")
    seed.press("Tab")
    expect(nodes(b).first.get_by_label("Seed")).to_have_value("42")
    node.get_by_role("button", name="Generate").click()
    expect(job_rows(b)).to_have_count(4)
    expect(job_rows(b).first.get_by_test_id("job-seed")).to_have_text("seed 42")
