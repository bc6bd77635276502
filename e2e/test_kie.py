"""KIE.ai end to end: the app talks real HTTP to a fake KIE.ai process on loopback."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Browser, expect

from core.settings import Settings
from e2e.helpers import RESULT_ALT, job_rows, model_node, nodes, open_canvas, set_prompt, two_tabs
from e2e.server import AppServer, FakeProviderServer
from tests.wait import wait_until

DONE = 30_000


pytestmark = pytest.mark.usefixtures("fresh_fakes")


def test_nano_banana_and_its_edit_complete_in_both_tabs(
    browser: Browser, project_url: str, fake_kie: FakeProviderServer
) -> None:
    a, b = two_tabs(browser, project_url)
    source = model_node(a, "a red kite over the sea", "google/nano-banana")
    source.get_by_role("button", name="Generate").click()
    for page in (a, b):
        expect(job_rows(page)).to_have_count(1)
        expect(job_rows(page).first).to_contain_text("google/nano-banana")
        expect(job_rows(page).first).to_contain_text("kie")
        expect(job_rows(page).first).to_have_attribute("data-status", "completed", timeout=DONE)
        expect(nodes(page).first.get_by_alt_text(RESULT_ALT)).to_be_visible()

    a.get_by_role("button", name="Add image edit node").click()
    edit = nodes(a).nth(1)
    edit.get_by_label("Model").select_option("google/nano-banana-edit")
    expect(edit.get_by_label("Model")).to_have_value("google/nano-banana-edit")
    set_prompt(edit, "make the kite golden")
    edit.get_by_label("Add input from node").select_option(index=1)
    expect(edit.get_by_alt_text("Input image")).to_have_count(1)
    edit.get_by_role("button", name="Generate").click()
    for page in (a, b):
        expect(job_rows(page)).to_have_count(2)
        expect(job_rows(page).first).to_contain_text("google/nano-banana-edit")
        expect(job_rows(page).first).to_have_attribute("data-status", "completed", timeout=DONE)
        expect(nodes(page).nth(1).get_by_alt_text(RESULT_ALT)).to_be_visible()

    records = fake_kie.state("tasks")["records"]
    edit_request = json.loads(next(r for r in records if r["model"] == "google/nano-banana-edit")["param"])
    assert edit_request["input"]["image_urls"][0].startswith("http://127.0.0.1:")
    assert "/media/" in edit_request["input"]["image_urls"][0]


def test_polling_completes_the_job_when_no_callback_comes(
    browser: Browser, project_url: str, fake_kie: FakeProviderServer, app_server: AppServer
) -> None:
    fake_kie.configure(callbacks=False)
    a, b = two_tabs(browser, project_url)
    model_node(a, "a quiet harbour", "google/nano-banana").get_by_role("button", name="Generate").click()
    for page in (a, b):
        expect(job_rows(page).first).to_have_attribute("data-status", "completed", timeout=DONE)
        expect(nodes(page).first.get_by_alt_text(RESULT_ALT)).to_be_visible()
    job_id = job_rows(a).first.get_attribute("data-job-id")
    assert not app_server.log_events("webhook.received", job_id)
    assert any(e["status"] == "completed" for e in app_server.log_events("poll.answered", job_id))


def test_duplicate_signed_callbacks_complete_once(
    browser: Browser, project_url: str, fake_kie: FakeProviderServer, app_server: AppServer
) -> None:
    fake_kie.configure(duplicate_callbacks=True, delay_s=0.5)
    a, b = two_tabs(browser, project_url)
    model_node(a, "twice told", "google/nano-banana").get_by_role("button", name="Generate").click()
    for page in (a, b):
        expect(job_rows(page).first).to_have_attribute("data-status", "completed", timeout=DONE)
    job_id = job_rows(a).first.get_attribute("data-job-id")
    updates = [e for e in app_server.log_events("job.updated", job_id) if e["status"] == "completed"]
    assert len(updates) == 1
    assert all(e["verified"] for e in app_server.log_events("webhook.received", job_id))


def test_insufficient_credits_shows_in_both_tabs(
    browser: Browser, project_url: str, fake_kie: FakeProviderServer
) -> None:
    fake_kie.configure(error_code=402)
    a, b = two_tabs(browser, project_url)
    model_node(a, "an expensive picture", "google/nano-banana").get_by_role("button", name="Generate").click()
    for page in (a, b):
        expect(job_rows(page).first).to_have_attribute("data-status", "failed", timeout=DONE)
        expect(job_rows(page).first.get_by_test_id("job-error")).to_contain_text("insufficient credits")
        expect(nodes(page).first.get_by_test_id("node-error")).to_contain_text("insufficient credits")


def test_job_running_while_the_backend_restarts_still_completes(
    browser: Browser, project_url: str, fake_kie: FakeProviderServer, app_server: AppServer
) -> None:
    # No callbacks: only the restarted app's poller can finish it. Held at the fake until the old
    # app is gone: with a 3 s generation alone, a loaded CI run saw the job completed before the
    # restart (and `submitted`, which lasts until the first poll, never).
    fake_kie.configure(delay_s=1, callbacks=False, hold=True)
    a, _ = two_tabs(browser, project_url)
    model_node(a, "patience", "google/nano-banana").get_by_role("button", name="Generate").click()
    at_provider = re.compile(r"^(submitted|running)$")
    expect(job_rows(a).first).to_have_attribute("data-status", at_provider, timeout=DONE)
    job_id = job_rows(a).first.get_attribute("data-job-id")

    app_server.stop()
    fake_kie.configure(delay_s=1, callbacks=False)  # done whenever it is asked next
    app_server.start()
    reopened = browser.new_context().new_page()
    open_canvas(reopened, project_url)
    # A graceful stop gives back the old process's claims (`Worker.stop`). A stop whose shutdown
    # never runs (granian's worker panicked on SIGTERM in a clean-clone run) leaves a poll's claim
    # on the job until its lease runs out (WORK_LEASE_S, 60 s): still completed, later.
    lease_ms = Settings.model_fields["work_lease_s"].default * 1000
    expect(job_rows(reopened).first).to_have_attribute("data-status", "completed", timeout=lease_ms + DONE)
    expect(nodes(reopened).first.get_by_alt_text(RESULT_ALT)).to_be_visible()
    completions = [e for e in app_server.log_events("job.updated", job_id) if e["status"] == "completed"]
    assert len(completions) == 1
    assert any(e["status"] == "completed" for e in app_server.log_events("poll.answered", job_id))


def test_an_outage_shows_when_the_next_try_comes_counting_down_and_cancel_ends_the_wait(
    browser: Browser, project_url: str, fake_kie: FakeProviderServer
) -> None:
    fake_kie.configure(error_code=500, retry_after_s=40)  # down, and asking to be tried again in 40 s
    a, b = two_tabs(browser, project_url)
    model_node(a, "a kite in an outage", "google/nano-banana").get_by_role("button", name="Generate").click()
    waiting = re.compile(r"^waiting for KIE\.ai, next try in (\d+) s$")
    for page in (a, b):
        row = job_rows(page).first
        expect(row.get_by_test_id("job-waiting")).to_have_text(waiting, timeout=DONE)
        expect(row).to_have_attribute("data-status", "queued")
        expect(nodes(page).first.get_by_test_id("node-waiting")).to_have_text(waiting)

    def seconds_left() -> int:
        text = job_rows(b).first.get_by_test_id("job-waiting").inner_text()
        match = waiting.match(text)
        assert match, text
        return int(match.group(1))

    first = seconds_left()
    assert 30 <= first <= 41
    # The row came once; the browser counts down to its absolute time by itself.
    wait_until(seconds_left, lambda left: left < first, what="the countdown to move", timeout_s=5)
    job_rows(a).first.get_by_role("button", name="Cancel").click()
    for page in (a, b):
        expect(job_rows(page).first).to_have_attribute("data-status", "cancelled")
        expect(page.get_by_test_id("job-waiting")).to_have_count(0)
        expect(page.get_by_test_id("node-waiting")).to_have_count(0)
