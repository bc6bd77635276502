"""Two people on one server: each sees only their own projects, jobs and images."""

from __future__ import annotations

import re
import uuid

from playwright.sync_api import Browser, Page, expect

from e2e.helpers import RESULT_ALT, add_text_node, job_rows, nodes, open_canvas
from e2e.server import AppServer

DONE = 30_000


def sign_up(page: Page, base_url: str, email: str, password: str = "a long password") -> None:
    page.goto(f"{base_url}/signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Create an account").click()
    page.wait_for_url(re.compile(r".*/p/\d+$"))
    expect(page.get_by_test_id("signed-in-as")).to_have_text(email)


def test_the_toolbars_sign_in_opens_the_sign_in_page(browser: Browser, app_server: AppServer) -> None:
    """It was routed inside the page, which has no `/login` route: "404: Page not found"."""
    page = browser.new_context().new_page()
    open_canvas(page, app_server.url)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/login(\?.*)?$"))
    expect(page.get_by_label("Password")).to_be_visible()
    expect(page.get_by_text("404")).to_have_count(0)
    page.context.close()


def test_a_second_user_sees_nothing_of_the_first(browser: Browser, app_server: AppServer) -> None:
    secret = f"alice's secret lighthouse {uuid.uuid4().hex[:8]}"
    alice = browser.new_context().new_page()
    sign_up(alice, app_server.url, f"alice-{uuid.uuid4().hex[:8]}@example.com")
    alice_project = alice.url
    add_text_node(alice, secret)
    alice.get_by_role("button", name="Generate").click()
    expect(job_rows(alice)).to_have_count(1)
    expect(job_rows(alice).first).to_have_attribute("data-status", "completed", timeout=DONE)
    image = nodes(alice).first.get_by_alt_text(RESULT_ALT)
    expect(image).to_be_visible()
    image_url = app_server.url + str(image.get_attribute("src"))
    assert alice.request.get(image_url).status == 200

    bob_context = browser.new_context()
    bob = bob_context.new_page()
    frames: list[str] = []
    bob.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(str(payload))))
    sign_up(bob, app_server.url, f"bob-{uuid.uuid4().hex[:8]}@example.com")
    open_canvas(bob, bob.url)
    expect(nodes(bob)).to_have_count(0)
    expect(job_rows(bob)).to_have_count(0)
    options = bob.get_by_label("Project", exact=True).locator("option")
    expect(options).to_have_count(1)  # only Bob's own first project

    # Guessing Alice's project URL reads like a project that does not exist.
    bob.goto(alice_project)
    expect(bob.get_by_text(re.compile(r"Project \d+ does not exist"))).to_be_visible()
    bob.wait_for_url(lambda url: url != alice_project and re.search(r"/p/\d+$", url) is not None)
    expect(nodes(bob)).to_have_count(0)
    # Her image is not served to him, nor to someone with no session at all.
    assert bob.request.get(image_url).status == 404
    assert browser.new_context().request.get(image_url).status == 404

    # While Bob's tab is open, Alice works on: nothing of it reaches Bob's websocket.
    alice.get_by_role("button", name="Generate").click()
    expect(job_rows(alice)).to_have_count(2)
    expect(job_rows(alice).first).to_have_attribute("data-status", "completed", timeout=DONE)
    expect(job_rows(bob)).to_have_count(0)
    assert frames, "Bob's tab never talked to the server"
    leaked = [f for f in frames if "lighthouse" in f or image_url.rsplit("/", 1)[-1] in f]
    assert not leaked
    bob_context.close()


def test_signing_out_returns_to_the_sign_in_page(browser: Browser, app_server: AppServer) -> None:
    page = browser.new_context().new_page()
    email = f"carol-{uuid.uuid4().hex[:8]}@example.com"
    sign_up(page, app_server.url, email)
    own_project = page.url
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r".*/login$"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("not her password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong email or password")
    page.get_by_label("Password").fill("a long password")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(own_project)
    expect(page.get_by_test_id("signed-in-as")).to_have_text(email)
