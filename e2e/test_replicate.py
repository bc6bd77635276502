"""Replicate end to end: the app talks real HTTP to a fake Replicate process with its own webhook secret."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from e2e.helpers import RESULT_ALT, add_edit_node, job_rows, model_node, nodes, two_tabs
from e2e.server import AppServer, FakeProviderServer
from tests.wait import wait_until

DONE = 30_000
TEXT, EDIT = "replicate/google/nano-banana", "replicate/google/nano-banana/edit"

pytestmark = pytest.mark.usefixtures("fresh_fakes")


def text_then_edit_in_two_tabs(a: Page, b: Page, prompt: str) -> list[str]:
    """Generate a text-to-image node, then an edit of its result; both complete in both tabs."""
    model_node(a, prompt, TEXT).get_by_role("button", name="Generate").click()
    for page in (a, b):
        expect(job_rows(page).first).to_contain_text(TEXT)
        expect(job_rows(page).first).to_contain_text("replicate")
        expect(job_rows(page).first).to_have_attribute("data-status", "completed", timeout=DONE)
        expect(nodes(page).first.get_by_alt_text(RESULT_ALT)).to_be_visible()
    add_edit_node(a, f"{prompt}, at night", EDIT).get_by_role("button", name="Generate").click()
    for page in (a, b):
        expect(job_rows(page)).to_have_count(2)
        expect(job_rows(page).first).to_contain_text(EDIT)
        expect(job_rows(page).first).to_have_attribute("data-status", "completed", timeout=DONE)
        expect(nodes(page).nth(1).get_by_alt_text(RESULT_ALT)).to_be_visible()
    return [str(job_rows(a).nth(i).get_attribute("data-job-id")) for i in range(2)]


def test_text_to_image_and_edit_complete_in_both_tabs_by_webhook(
    browser: Browser, project_url: str, fake_replicate: FakeProviderServer, app_server: AppServer
) -> None:
    # The session's app polls from 1 s (POLL_START_S): a prediction that takes the fake's default
    # 1.2 s was found done by the first poll on a loaded machine before its webhook arrived (the
    # delivery then met a finished job). Done in 0.3 s, the webhook comes well before that poll.
    fake_replicate.configure(delay_s=0.3)
    a, b = two_tabs(browser, project_url)
    job_ids = text_then_edit_in_two_tabs(a, b, "a lighthouse in fog")
    for job_id in job_ids:
        received = app_server.log_events("webhook.received", job_id)
        late = [e for e in app_server.log_events("webhook.duplicate", job_id) if e["reason"] == "job already finished"]
        # Should a poll still come first, the delivery must have passed its checks to meet the finished job.
        assert (received and all(e["verified"] and e["status"] == "completed" for e in received)) or late, job_id
    state = fake_replicate.state("predictions")
    edit = next(p for p in state["predictions"] if p["input"]["prompt"] == "a lighthouse in fog, at night")
    assert "/media/" in edit["input"]["image_input"][0]
    assert edit["input"]["output_format"] == "png"
    assert {d["status"] for d in state["deliveries"] if d["prediction_id"] == edit["id"]} == {200}


def test_a_202_on_create_and_a_delivery_sent_twice_complete_the_job_once(
    browser: Browser, project_url: str, fake_replicate: FakeProviderServer, app_server: AppServer
) -> None:
    """Replicate documents 202 for a create (it failed the job while the prediction ran on), and resends
    a webhook on any 4xx: the identical second delivery must get a 2xx and change nothing."""
    fake_replicate.configure(create_status=202, duplicate_deliveries=True)
    a, b = two_tabs(browser, project_url)
    model_node(a, "a kite over dunes", TEXT).get_by_role("button", name="Generate").click()
    for page in (a, b):
        expect(job_rows(page).first).to_have_attribute("data-status", "completed", timeout=DONE)
        expect(nodes(page).first.get_by_alt_text(RESULT_ALT)).to_have_count(1)
    job_id = str(job_rows(a).first.get_attribute("data-job-id"))
    ours = next(
        p["id"]
        for p in fake_replicate.state("predictions")["predictions"]
        if p["input"]["prompt"] == "a kite over dunes"
    )

    def deliveries() -> list[dict]:
        return [d for d in fake_replicate.state("predictions")["deliveries"] if d["prediction_id"] == ours]

    sent = wait_until(deliveries, lambda found: any(d.get("duplicate") for d in found), what="the duplicate delivery")
    assert [d.get("status") for d in sent] == [200, 200]
    assert len(app_server.log_events("image.stored", job_id)) == 1


def test_text_to_image_and_edit_complete_by_polling_alone(
    browser: Browser, project_url: str, fake_replicate: FakeProviderServer, app_server: AppServer
) -> None:
    fake_replicate.configure(webhooks=False)
    a, b = two_tabs(browser, project_url)
    job_ids = text_then_edit_in_two_tabs(a, b, "a quiet orchard")
    for job_id in job_ids:
        assert not app_server.log_events("webhook.received", job_id)
        assert any(e["status"] == "completed" for e in app_server.log_events("poll.answered", job_id))
    state = fake_replicate.state("predictions")
    ours = {p["id"] for p in state["predictions"] if p["input"]["prompt"].startswith("a quiet orchard")}
    assert len(ours) == 2
    assert not [d for d in state["deliveries"] if d["prediction_id"] in ours]


def test_webhook_signed_with_another_secret_is_rejected_and_polling_completes(
    browser: Browser, project_url: str, fake_replicate: FakeProviderServer, app_server: AppServer
) -> None:
    fake_replicate.configure(wrong_secret=True, delay_s=0.5, delivery_pauses_s=[])
    a, b = two_tabs(browser, project_url)
    model_node(a, "a forged postcard", TEXT).get_by_role("button", name="Generate").click()
    for page in (a, b):
        expect(job_rows(page).first).to_have_attribute("data-status", "completed", timeout=DONE)
    job_id = job_rows(a).first.get_attribute("data-job-id")
    rejected = app_server.log_events("webhook.rejected", job_id)
    assert rejected and rejected[0]["reason"] == "Bad Replicate webhook signature"
    assert any(e["status"] == "completed" for e in app_server.log_events("poll.answered", job_id))
