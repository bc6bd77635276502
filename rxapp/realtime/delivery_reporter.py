"""The browser half of delivery confirmation, reading the room store (room_store.js).

The store holds the project this tab shows and the highest sequence number it has
merged into its rows, with the moment it did (`window.__roomStore`). At most once a
second (every 5 s when nothing moved, as a heartbeat) the tab posts that sequence and
moment, and how often its websocket reconnected (Reflex's `__reflex_otel.onSocketConnect`
hook), to `/api/feed/seen`; on `pagehide` it says it is closing. When the answer says
this tab fell behind, it clicks the hidden resync button, which asks the room bridge
for a fresh snapshot.
"""

from __future__ import annotations

from pathlib import Path

import reflex as rx

from rxapp.states.room import ProjectRoom

REPORT_EVERY_MS = 1000
HEARTBEAT_MS = 5000

REPORTER_JS = (
    (Path(__file__).with_suffix(".js"))
    .read_text()
    .replace("REPORT_EVERY_MS", str(REPORT_EVERY_MS))
    .replace("HEARTBEAT_MS", str(HEARTBEAT_MS))
)


def delivery_reporter() -> rx.Component:
    return rx.el.button(
        id="delivery-resync",
        on_click=ProjectRoom.resync,
        hidden=True,
        tab_index=-1,
        on_mount=rx.call_script(REPORTER_JS),
    )
