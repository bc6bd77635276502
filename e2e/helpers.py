"""Page helpers shared by the end-to-end suites."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, WebSocketRoute, expect

EVENT_SOCKET = re.compile(r".*/_event.*")
RESULT_ALT = re.compile(r"^Result")


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


def set_prompt(node: Locator, prompt: str) -> None:
    field = node.get_by_label("Prompt")
    field.fill(prompt)
    field.press("Tab")  # blur flushes the debounced change to the server
    expect(field).to_have_value(prompt)


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
    """Sits between a page and the app's websocket: can hold Generate events or cut the line."""

    def __init__(self, page: Page) -> None:
        self.holding = False
        self.blocked = False
        self.held: list[str | bytes] = []
        self._routes: list[tuple[WebSocketRoute, WebSocketRoute]] = []
        page.route_web_socket(EVENT_SOCKET, self._route)

    def _route(self, ws: WebSocketRoute) -> None:
        if self.blocked:
            ws.close()
            return
        server = ws.connect_to_server()
        self._routes.append((ws, server))

        def from_page(message: str | bytes) -> None:
            if self.holding and isinstance(message, str) and ".generate" in message:
                self.held.append(message)
            else:
                server.send(message)

        ws.on_message(from_page)
        server.on_message(ws.send)

    def release(self) -> None:
        self.holding = False
        _, server = self._routes[-1]
        for message in self.held:
            server.send(message)
        self.held.clear()

    def cut(self) -> None:
        """Drop the connection and refuse reconnects until `restore`."""
        self.blocked = True
        for ws, _ in self._routes:
            ws.close()
        self._routes.clear()

    def restore(self) -> None:
        self.blocked = False
