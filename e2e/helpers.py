"""Page helpers shared by the end-to-end suites."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, Locator, Page, WebSocketRoute, expect

EVENT_SOCKET = re.compile(r".*/_event.*")
RESULT_ALT = re.compile(r"^Result")


def open_canvas(page: Page, url: str) -> None:
    """Load a page and wait until the app hydrated (its data came over the websocket)."""
    page.goto(url)
    page.wait_for_url(re.compile(r".*/p/\d+$"))
    expect(page.get_by_role("region", name="Queue")).to_be_visible()
    expect(page.get_by_label("Project name")).not_to_have_value("", timeout=15_000)


def open_check_realtime(page: Page) -> Locator:
    """The `Check realtime` dialog, opened from the toolbar's `Diagnostics` menu."""
    page.get_by_role("button", name="Diagnostics").click()
    page.get_by_role("button", name="Check realtime").click()
    dialog = page.get_by_role("dialog", name="Check realtime")
    expect(dialog).to_be_visible()
    return dialog


def queue(page: Page) -> Locator:
    return page.get_by_role("region", name="Queue")


def nodes(page: Page) -> Locator:
    return page.get_by_test_id("node")


def add_text_node(page: Page, prompt: str) -> Locator:
    before = nodes(page).count()
    page.get_by_role("button", name="Add text-to-image node").click()
    expect(nodes(page)).to_have_count(before + 1)
    node = nodes(page).nth(before)
    set_prompt(node, prompt)
    return node


def model_node(page: Page, prompt: str, model: str) -> Locator:
    """A new text-to-image node with `prompt`, set to run on `model`."""
    node = add_text_node(page, prompt)
    node.get_by_label("Model").select_option(model)
    expect(node.get_by_label("Model")).to_have_value(model)
    return node


def new_edit_node(page: Page, prompt: str, model: str) -> Locator:
    """A new image edit node on `model` with `prompt`, no input yet."""
    before = nodes(page).count()
    page.get_by_role("button", name="Add image edit node").click()
    expect(nodes(page)).to_have_count(before + 1)
    edit = nodes(page).nth(before)
    edit.get_by_label("Model").select_option(model)
    expect(edit.get_by_label("Model")).to_have_value(model)
    set_prompt(edit, prompt)
    return edit


def add_edit_node(page: Page, prompt: str, model: str) -> Locator:
    """A new image edit node on `model` whose input is the first node's result."""
    edit = new_edit_node(page, prompt, model)
    edit.get_by_label("Add input from node").select_option(index=1)
    expect(edit.get_by_alt_text("Input image")).to_have_count(1)
    return edit


def set_prompt(node: Locator, prompt: str) -> None:
    field = node.get_by_label("Prompt")
    field.fill(prompt)
    field.press("Tab")  # blur flushes the debounced change to the server
    expect(field).to_have_value(prompt)


def two_tabs(browser: Browser, url: str) -> tuple[Page, Page]:
    """Two tabs of one browser context, both hydrated on `url`."""
    context = browser.new_context()
    a, b = context.new_page(), context.new_page()
    for page in (a, b):
        open_canvas(page, url)
    return a, b


def job_rows(page: Page) -> Locator:
    """Real (server-confirmed) rows of the queue."""
    return queue(page).locator("[data-testid=queue-row][data-job-id]")


def watch_for_result_image(page: Page) -> None:
    """Record (Date.now) when a result image is first rendered and loaded in this tab."""
    page.evaluate(
        """() => {
          window.__resultSeenAt = null;
          const check = () => {
            const img = document.querySelector('img[alt^="Result"]');
            if (!img || window.__resultSeenAt) return;
            if (img.complete && img.naturalWidth) window.__resultSeenAt = Date.now();
            else img.addEventListener('load', () => { window.__resultSeenAt ??= Date.now(); }, {once: true});
          };
          new MutationObserver(check).observe(document.body, {subtree: true, childList: true, attributes: true});
        }"""
    )


class SocketGate:
    """Sits between a page and the app's websocket: can hold or lose Generate events, or cut the line."""

    def __init__(self, page: Page) -> None:
        self.holding = False
        #: Drop Generate events, as a socket whose worker just died does, without a word.
        self.losing = False
        self.blocked = False
        #: Pass nothing either way and close nothing: a network gone without a word (a shut lid).
        #: What was sent meanwhile waits, as in TCP's buffers, until `wake`.
        self.silent = False
        self._asleep: list[tuple[WebSocketRoute, str | bytes]] = []
        self.held: list[str | bytes] = []
        self.lost: list[str | bytes] = []
        #: What reached the server from the page.
        self.sent: list[str | bytes] = []
        self._routes: list[tuple[WebSocketRoute, WebSocketRoute]] = []
        page.route_web_socket(EVENT_SOCKET, self._route)

    def _route(self, ws: WebSocketRoute) -> None:
        if self.blocked:
            ws.close()
            return
        server = ws.connect_to_server()
        self._routes.append((ws, server))

        def from_page(message: str | bytes) -> None:
            if self.silent:
                self._asleep.append((server, message))
                return
            generate = isinstance(message, str) and ".generate" in message
            if generate and self.holding:
                self.held.append(message)
            elif generate and self.losing:
                self.lost.append(message)
            else:
                self.sent.append(message)
                server.send(message)

        def from_server(message: str | bytes) -> None:
            if self.silent:
                self._asleep.append((ws, message))
            else:
                ws.send(message)

        ws.on_message(from_page)
        server.on_message(from_server)

    @property
    def connections(self) -> int:
        """How many times the page connected (1 + its reconnects)."""
        return len(self._routes)

    def generates_sent(self) -> int:
        return sum(1 for message in self.sent if isinstance(message, str) and ".generate" in message)

    def release(self) -> None:
        self.holding = False
        _, server = self._routes[-1]
        for message in self.held:
            server.send(message)
        self.held.clear()

    def wake(self) -> None:
        """End the silence: what waited goes through, in order."""
        self.silent = False
        for to, message in self._asleep:
            to.send(message)
        self._asleep.clear()

    def cut(self) -> None:
        """Drop the connection and refuse reconnects until `restore`."""
        self.blocked = True
        for ws, _ in self._routes:
            ws.close()
        self._routes.clear()

    def restore(self) -> None:
        self.blocked = False
