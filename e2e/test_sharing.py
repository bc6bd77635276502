"""Three people on one shared project (sign-in required): owner, editor and viewer, live, each with their rights."""

from __future__ import annotations

import json
import os
import re
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserType, Locator, Page, WebSocketRoute, expect

from e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from e2e.helpers import (
    EVENT_SOCKET,
    RESULT_ALT,
    add_text_node,
    job_rows,
    nodes,
    open_canvas,
    open_check_realtime,
    set_prompt,
)
from e2e.server import AppServer
from e2e.socket_tabs import handler_name
from e2e.test_accounts import sign_up
from tests.wait import wait_until

DONE = 30_000
#: Presence follows a closed tab or a killed browser within this long.
GONE_MS = 5_000
#: Socket.io events that carry a project's content (rxapp/realtime/bridge.py).
PROJECT_FRAMES = ("canvas.change", "canvas.snapshot", "canvas.presence", "canvas.members")
VIEW_ONLY = "You can view this project but not change it"
#: A socket.io EVENT packet the page sends: Engine.IO message, namespace, then the JSON array.
EVENT_FRAME = re.compile(r'^(42(?:/[^,\[]*,)?)(\["event",.*)$', re.S)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    server = AppServer(
        data_dir=Path(tmp_path_factory.mktemp("sharing")), env={"AUTH_REQUIRED": "true"}, private_workdirs=True
    )
    server.start()
    yield server
    server.stop()


class Person:
    """One account in its own browser context. Its websocket runs through a route that records
    every frame and can send a hand-made one, as a modified page would."""

    def __init__(self, browser: Browser, server: AppServer, name: str) -> None:
        self.email = f"{name}-{uuid.uuid4().hex[:8]}@example.com"
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.received: list[str] = []
        self.sent: list[str] = []
        self._server: WebSocketRoute | None = None
        self.page.route_web_socket(EVENT_SOCKET, self._route)
        sign_up(self.page, server.url, self.email)

    def _route(self, ws: WebSocketRoute) -> None:
        server = self._server = ws.connect_to_server()

        def to_server(message: str | bytes) -> None:
            self.sent.append(str(message))
            server.send(message)

        def to_page(message: str | bytes) -> None:
            self.received.append(str(message))
            ws.send(message)

        ws.on_message(to_server)
        server.on_message(to_page)

    def forge(self, handler: str, payload: dict) -> None:
        """Send the server a `ProjectRoom` event the page never offered, framed like the last one it sent."""
        frame = next(f for f in reversed(self.sent) if EVENT_FRAME.match(f))
        prefix, body = EVENT_FRAME.match(frame).groups()  # type: ignore[union-attr]
        _, event = json.loads(body)
        event = {**event, "name": handler_name("rxapp.states.room", "ProjectRoom", handler), "payload": payload}
        assert self._server is not None
        self._server.send(prefix + json.dumps(["event", event]))

    def projects(self) -> Locator:
        return self.page.get_by_label("Project", exact=True).locator("option")


def share(owner: Page, email: str, role: str) -> None:
    dialog = owner.get_by_role("dialog")
    dialog.get_by_label("Email").fill(email)
    dialog.get_by_label("Role", exact=True).select_option(role)
    dialog.get_by_role("button", name="Add", exact=True).click()
    expect(dialog.locator(f"[data-testid=member][data-email='{email}']")).to_have_attribute("data-role", role)


def presence(page: Page) -> Locator:
    return page.get_by_role("region", name="Presence").get_by_test_id("presence-person")


@pytest.fixture
def team(browser: Browser, shared_server: AppServer) -> Iterator[tuple[Person, Person, Person]]:
    """Owner, editor and viewer; the owner's project shared with the other two, each on it."""
    owner, editor, viewer = (Person(browser, shared_server, name) for name in ("owner", "editor", "viewer"))
    owner.page.get_by_role("button", name="Share").click()
    share(owner.page, editor.email, "editor")
    share(owner.page, viewer.email, "viewer")
    owner.page.keyboard.press("Escape")
    for member, role in ((editor, "editor"), (viewer, "viewer")):
        # The project menu learned it at once, without a reload.
        expect(member.projects()).to_have_count(2)
        expect(member.projects().nth(1)).to_contain_text(f"(shared, {role}) · {owner.email}")  # and whose
        open_canvas(member.page, owner.page.url)
    # A diagnostic is not for viewers: no Diagnostics menu (and no Check realtime) on a viewer's page.
    expect(viewer.page.get_by_role("button", name="Diagnostics")).to_have_count(0)
    open_check_realtime(editor.page)
    editor.page.keyboard.press("Escape")
    yield owner, editor, viewer
    for person in (owner, editor, viewer):
        person.context.close()


def test_owner_editor_and_viewer_each_get_their_rights(
    team: tuple[Person, Person, Person], shared_server: AppServer
) -> None:
    owner, editor, viewer = team
    node = add_text_node(editor.page, f"a shared lighthouse {uuid.uuid4().hex[:6]}")
    node.get_by_role("button", name="Generate").click()
    for person in team:
        expect(job_rows(person.page).first).to_have_attribute("data-status", "completed", timeout=DONE)
        image = nodes(person.page).first.get_by_alt_text(RESULT_ALT)
        expect(image).to_be_visible()
        expect(image).to_have_js_property("complete", True)
        assert person.page.evaluate("(img) => img.naturalWidth", image.element_handle()) > 0  # served to each

    # The viewer's controls are disabled, and a forged Generate over its websocket is refused.
    seen = viewer.page
    for control in (
        nodes(seen).first.get_by_role("button", name="Generate"),
        nodes(seen).first.get_by_label("Prompt"),
        seen.get_by_role("button", name="Add text-to-image node"),
        seen.get_by_label("Project name"),
    ):
        expect(control).to_be_disabled()
    node_id = int(str(nodes(seen).first.get_attribute("data-node-id")))
    viewer.forge("generate", {"node_id": node_id, "client_request_id": f"forged-{uuid.uuid4().hex}"})
    expect(seen.get_by_text(VIEW_ONLY).first).to_be_visible()
    viewer.forge("on_node", {"action": "prompt", "node_id": node_id, "value": "the viewer was here"})
    wait_until(
        lambda: len(shared_server.log_events("tab.not_allowed")),
        lambda refused: refused >= 2,
        what="both forged events refused",
    )
    for person in team:
        expect(job_rows(person.page)).to_have_count(1)
        expect(nodes(person.page).first.get_by_label("Prompt")).not_to_have_value("the viewer was here")

    # The owner removes the editor: the tab says its access ended and hears nothing more of the project.
    owner.page.get_by_role("button", name="Share").click()
    owner.page.get_by_role("dialog").get_by_role("button", name=f"Remove {editor.email}").click()
    expect(owner.page.get_by_role("dialog").get_by_test_id("member")).to_have_count(2)
    owner.page.keyboard.press("Escape")
    expect(editor.page.get_by_role("alert").filter(has_text="access to this project ended")).to_be_visible()
    expect(nodes(editor.page)).to_have_count(0)
    expect(editor.projects()).to_have_count(1)  # only the editor's own project is left
    heard = len(editor.received)
    nodes(owner.page).first.get_by_role("button", name="Generate").click()
    expect(job_rows(viewer.page)).to_have_count(2)
    expect(job_rows(viewer.page).first).to_have_attribute("data-status", "completed", timeout=DONE)
    later = editor.received[heard:]
    assert not [frame for frame in later if any(name in frame for name in PROJECT_FRAMES)], later
    expect(job_rows(editor.page)).to_have_count(0)


def test_presence_shows_who_is_here_and_who_types_where(team: tuple[Person, Person, Person]) -> None:
    owner, editor, viewer = team
    for person in team:
        expect(presence(person.page)).to_have_count(3)
    second = editor.context.new_page()
    open_canvas(second, owner.page.url)
    expect(presence(owner.page).filter(has_text=editor.email)).to_contain_text("2 tabs")
    second.close()
    expect(presence(owner.page).filter(has_text=editor.email)).to_contain_text("1 tab", timeout=GONE_MS)

    # The owner's cursor in a prompt shows in the others' lists and on the node.
    node = add_text_node(owner.page, "first words")
    node_id = str(node.get_attribute("data-node-id"))
    node.get_by_label("Prompt").focus()
    expect(presence(viewer.page).filter(has_text=owner.email)).to_contain_text(f"typing in #{node_id}")
    expect(nodes(viewer.page).first.get_by_test_id("typing-here")).to_contain_text(owner.email)

    # Two people in one prompt: the last write wins, and the other one is told.
    theirs = nodes(editor.page).first
    # The editor types into what they see: the owner's text must have reached their tab, or
    # it lands mid-typing (a select-all then replaced by it) and the two texts join.
    expect(theirs.get_by_label("Prompt")).to_have_value("first words")
    set_prompt(theirs, "the editor's words")
    expect(nodes(owner.page).first.get_by_label("Prompt")).to_have_value("the editor's words")
    set_prompt(nodes(owner.page).first, "the owner's words")
    expect(theirs.get_by_label("Prompt")).to_have_value("the owner's words")
    expect(theirs.get_by_test_id("prompt-overwritten")).to_be_visible()
    expect(nodes(owner.page).first.get_by_test_id("prompt-overwritten")).to_have_count(0)

    # A closed tab leaves the list within seconds.
    viewer.page.close()
    expect(presence(owner.page)).to_have_count(2, timeout=GONE_MS)
    expect(presence(editor.page)).to_have_count(2, timeout=GONE_MS)


def test_a_killed_browser_leaves_presence_within_seconds(
    browser_type: BrowserType, team: tuple[Person, Person, Person], shared_server: AppServer
) -> None:
    owner, _, viewer = team
    marker = f"--canvas-e2e-{uuid.uuid4().hex}"
    doomed = browser_type.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, marker])
    page = doomed.new_context().new_page()
    page.goto(f"{shared_server.url}/login")
    page.get_by_label("Email").fill(viewer.email)
    page.get_by_label("Password").fill("a long password")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/p/\d+$"))
    open_canvas(page, owner.page.url)
    expect(presence(owner.page).filter(has_text=viewer.email)).to_contain_text("2 tabs")
    leader = wait_until(lambda: browser_process(marker), lambda pid: pid > 0, what="the doomed browser's process")
    os.killpg(os.getpgid(leader), signal.SIGKILL)  # the browser and its helpers, no goodbye
    expect(presence(owner.page).filter(has_text=viewer.email)).to_contain_text("1 tab", timeout=GONE_MS)


def test_an_invited_stranger_signs_up_through_the_link_and_sees_the_project_live(
    browser: Browser, shared_server: AppServer
) -> None:
    owner = Person(browser, shared_server, "owner")
    owner.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=shared_server.url)
    stranger = f"newcomer-{uuid.uuid4().hex[:8]}@example.com"
    owner.page.get_by_role("button", name="Share").click()
    dialog = owner.page.get_by_role("dialog")
    dialog.get_by_label("Email").fill(stranger)
    dialog.get_by_label("Role", exact=True).select_option("editor")
    dialog.get_by_role("button", name="Add", exact=True).click()
    # The same sentence an existing account gets (tests/test_invitations.py): no account is told apart.
    expect(owner.page.get_by_text(f"Invited {stranger} as editor")).to_be_visible()
    row = dialog.locator(f"[data-testid=member][data-email='{stranger}']")
    expect(row).to_have_attribute("data-state", "invited")
    expect(row).to_have_attribute("data-role", "editor")
    field = row.get_by_label(f"Invitation link for {stranger}", exact=True)
    expect(field).to_have_value(re.compile(rf"^{re.escape(shared_server.url)}/invite/[\w-]{{43}}$"))
    row.get_by_role("button", name=f"Copy link for {stranger}").click()
    link = wait_until(
        lambda: owner.page.evaluate("navigator.clipboard.readText()"), bool, what="the copied invitation link"
    )
    assert link == field.input_value()

    # A new person opens the link signed out, signs up, and lands in the project, live.
    context = browser.new_context()
    newcomer = context.new_page()
    newcomer.goto(link)
    newcomer.wait_for_url(re.compile(r".*/signup\?next=%2Finvite%2F"))
    expect(newcomer.get_by_text("You are invited to a shared project")).to_be_visible()
    newcomer.get_by_label("Email").fill(stranger)
    newcomer.get_by_label("Password").fill("a long password")
    newcomer.get_by_role("button", name="Create an account").click()
    newcomer.wait_for_url(owner.page.url)
    expect(newcomer.get_by_label("Project name")).to_have_value(owner.page.get_by_label("Project name").input_value())
    expect(row).to_have_attribute("data-state", "member")  # the owner's open dialog follows
    expect(row.get_by_label(f"Access of {stranger}")).to_have_value("editor")
    owner.page.keyboard.press("Escape")
    add_text_node(owner.page, f"for the newcomer {uuid.uuid4().hex[:6]}")
    expect(nodes(newcomer)).to_have_count(1)
    expect(newcomer.get_by_role("button", name="Add text-to-image node")).to_be_enabled()  # an editor

    # The link worked once: opened again, even by its user, it says so and changes nothing.
    newcomer.goto(link)
    expect(newcomer.get_by_role("alert")).to_contain_text("no longer valid")
    context.close()
    owner.context.close()


def browser_process(marker: str) -> int:
    """The pid of the browser process launched with `marker` on its command line (0: none yet)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker.encode() in command and not any(arg.startswith(b"--type=") for arg in command):
            return int(entry.name)
    return 0
