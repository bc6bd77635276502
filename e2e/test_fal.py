"""Fal.ai end to end: the app talks real HTTP to a fake Fal queue process with its own signing key."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from e2e.helpers import RESULT_ALT, add_edit_node, job_rows, model_node, nodes, two_tabs
from e2e.server import AppServer, FakeProviderServer

DONE = 30_000


pytestmark = pytest.mark.usefixtures("fresh_fakes")


def test_fal_text_to_image_and_edit_complete_in_both_tabs(
    browser: Browser, project_url: str, fake_fal: FakeProviderServer
) -> None:
    a, b = two_tabs(browser, project_url)
    model_node(a, "a paper boat", "fal-ai/nano-banana").get_by_role("button", name="Generate").click()
    for page in (a, b):
        expect(job_rows(page).first).to_contain_text("fal-ai/nano-banana")
        expect(job_rows(page).first).to_have_attribute("data-status", "completed", timeout=DONE)
        expect(nodes(page).first.get_by_alt_text(RESULT_ALT)).to_be_visible()

    add_edit_node(a, "sail it at sunset", "fal-ai/nano-banana/edit").get_by_role("button", name="Generate").click()
    for page in (a, b):
        expect(job_rows(page)).to_have_count(2)
        expect(job_rows(page).first).to_contain_text("fal-ai/nano-banana/edit")
        expect(job_rows(page).first).to_have_attribute("data-status", "completed", timeout=DONE)
        expect(nodes(page).nth(1).get_by_alt_text(RESULT_ALT)).to_be_visible()
    edit = next(r for r in fake_fal.state("requests")["requests"] if r["model"] == "fal-ai/nano-banana/edit")
    assert "/media/" in edit["payload"]["image_urls"][0]


def test_webhook_signed_with_a_wrong_key_is_rejected_and_polling_completes(
    browser: Browser, project_url: str, fake_fal: FakeProviderServer, app_server: AppServer
) -> None:
    fake_fal.configure(wrong_key=True, delay_s=0.5)
    a, b = two_tabs(browser, project_url)
    model_node(a, "a forged letter", "fal-ai/nano-banana").get_by_role("button", name="Generate").click()
    for page in (a, b):
        expect(job_rows(page).first).to_have_attribute("data-status", "completed", timeout=DONE)
    job_id = job_rows(a).first.get_attribute("data-job-id")
    assert {d["status"] for d in fake_fal.state("requests")["deliveries"] if "status" in d} >= {401}
    rejected = app_server.log_events("webhook.rejected", job_id)
    assert rejected and rejected[0]["reason"] == "Bad Fal.ai webhook signature"
    assert not app_server.log_events("webhook.received", job_id)
    assert any(e["status"] == "completed" for e in app_server.log_events("poll.answered", job_id))


def test_cancel_on_a_queued_fal_job_shows_cancelled_in_both_tabs(
    browser: Browser, project_url: str, fake_fal: FakeProviderServer
) -> None:
    fake_fal.configure(queue_s=30)
    a, b = two_tabs(browser, project_url)
    model_node(a, "never drawn", "fal-ai/nano-banana").get_by_role("button", name="Generate").click()
    expect(job_rows(b).first.get_by_test_id("job-position")).to_contain_text("position", timeout=DONE)
    expect(job_rows(b).first.get_by_test_id("job-progress")).to_have_count(0)  # its place said once
    job_rows(b).first.get_by_role("button", name="Cancel").click()
    for page in (a, b):
        expect(job_rows(page).first).to_have_attribute("data-status", "cancelled")
    statuses = {r["status"] for r in fake_fal.state("requests")["requests"] if r["payload"]["prompt"] == "never drawn"}
    assert statuses == {"CANCELLED"}
