"""Connection state: a banner (role `status`) while this tab's websocket is down.

A socket that comes back within `QUIET_MS` shows nothing: a blip is not news. Past it the
banner says `Reconnecting...`, and counts the clicks made meanwhile, which Reflex holds in
its event queue and sends once the socket is back (a Generate's optimistic row shows too).
On return the page takes a fresh snapshot (Reflex re-runs `on_load`, the room store merges
it); only then, the page being exact again, does the banner say `Back online`, for `BACK_MS`.
The browser side is `connection.js`, installed as module code of the app's root.
"""

from __future__ import annotations

import json
from pathlib import Path

import reflex as rx
from reflex.experimental.client_state import ClientStateVar
from reflex_base.utils.imports import ImportVar

#: How long the socket may be down before the banner says so.
QUIET_MS = 1000
#: How long `Back online` stays once the page is exact again.
BACK_MS = 4000
#: How often the browser looks at the clock for those two.
TICK_MS = 200

connection_state = ClientStateVar.create("connectionState", default={"phase": "online", "queued": 0})
phase = connection_state.value.to(dict[str, str])["phase"].to(str)
queued = connection_state.value.to(dict[str, int])["queued"].to(int)

_JS = Path(__file__).with_suffix(".js").read_text()


class ConnectionWatch(rx.Fragment):
    """An app wrap: its module code hooks Reflex's socket (re)connects before any page mounts."""

    def add_imports(self) -> dict[str, list[ImportVar]]:
        return {"$/utils/state": [ImportVar(tag="refs")]}

    def add_custom_code(self) -> list[str]:
        slot = {
            "value": f"_client_state_{connection_state._getter_name}",
            "setter": f"_client_state_{connection_state._setter_name}",
        }
        config = {"slot": slot, "quietMs": QUIET_MS, "backMs": BACK_MS, "tickMs": TICK_MS}
        return [_JS.replace("__CONNECTION_CONFIG__", json.dumps(config))]


def connection_banner() -> rx.Component:
    """Always in the page, so screen readers announce what it comes to say (a live region)."""
    down = (phase == "reconnecting") | (phase == "syncing")
    return rx.box(
        connection_state,
        rx.cond(
            down,
            rx.callout(
                rx.text(
                    "Reconnecting...",
                    rx.cond(
                        queued > 0,
                        rx.text.span(
                            " ",
                            queued.to_string(),
                            rx.cond(queued == 1, " click", " clicks"),
                            " will be sent when back online.",
                        ),
                        " Clicks made now will be sent when back online.",
                    ),
                ),
                icon="wifi-off",
                color_scheme="amber",
                size="1",
            ),
        ),
        rx.cond(phase == "back", rx.callout("Back online", icon="wifi", color_scheme="green", size="1")),
        role="status",
        aria_live="polite",
        data_testid="connection",
        position="sticky",
        top="0",
        z_index="10",
    )
