"""The project page: nodes on the left, the queue on the right (below them on narrow screens)."""

from __future__ import annotations

import reflex as rx

from rxapp.components.examples import empty_project
from rxapp.components.keyboard import keyboard_shortcuts
from rxapp.components.layout import LAYOUT_CSS
from rxapp.components.node_card import PICKER_CSS, node_card
from rxapp.components.presence import presence_list
from rxapp.components.queue import queue_monitor
from rxapp.components.result_dialog import result_dialog
from rxapp.components.toolbar import toolbar
from rxapp.realtime.connection import connection_banner
from rxapp.realtime.delivery_reporter import delivery_reporter
from rxapp.realtime.room_store import access_ended, may_edit, nodes, room_store
from rxapp.states.pending import pending_jobs
from rxapp.states.upload import upload_zone


def canvas_page() -> rx.Component:
    return rx.box(
        room_store(),
        rx.el.style(PICKER_CSS),
        rx.el.style(LAYOUT_CSS),
        pending_jobs,
        delivery_reporter(),
        keyboard_shortcuts(),
        upload_zone(),
        result_dialog(),
        rx.el.header(toolbar()),
        connection_banner(),
        rx.el.main(
            presence_list(),
            rx.cond(
                access_ended,
                rx.el.div(
                    rx.callout(
                        "Your access to this project ended: its owner removed you. Pick another project.",
                        icon="lock",
                        color_scheme="red",
                    ),
                    role="alert",
                    data_testid="access-ended",
                ),
            ),
            # Narrow windows stack the queue below the nodes; wide ones put it beside them.
            rx.flex(
                # A disabled fieldset disables every control of the nodes at once: a viewer's page.
                rx.el.fieldset(
                    rx.flex(
                        rx.foreach(nodes, node_card),
                        rx.cond(nodes.length() == 0, empty_project()),
                        wrap="wrap",
                        gap="4",
                        width="100%",
                        align="start",
                        role="region",
                        aria_label="Nodes",
                        data_testid="canvas",
                    ),
                    disabled=~may_edit,
                    style={
                        "border": "0",
                        "padding": "0",
                        "margin": "0",
                        "min_width": "0",
                        "flex": "1",
                        "width": "100%",
                    },
                ),
                # Breakpoints of a style need rx.breakpoints: a plain dict reaches the CSS unread.
                rx.box(
                    queue_monitor(), width=rx.breakpoints(initial="100%", lg="600px"), flex_shrink="0", min_width="0"
                ),
                flex_direction=rx.breakpoints(initial="column", lg="row"),
                gap="5",
                width="100%",
                align="start",
            ),
        ),
        max_width="1800px",
        margin="0 auto",
        padding="16px",
    )


def redirect_page() -> rx.Component:
    return rx.center(rx.spinner(), height="50vh")
