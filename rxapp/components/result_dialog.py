"""A result, large: `Download` (named after the prompt) and `Use this result` for an earlier one."""

from __future__ import annotations

import reflex as rx

from rxapp.components.room_store import node_by_id
from rxapp.states.result_dialog import ResultDialog
from rxapp.states.room import ProjectRoom


def result_dialog() -> rx.Component:
    node = node_by_id(ResultDialog.node_id)  # type: ignore[arg-type]  # a state field is a Var on the class
    is_current = node["image_url"] == ResultDialog.url
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Result of #", ResultDialog.node_id),
            rx.dialog.description(rx.cond(is_current, "The node's current result", "An earlier result of the node")),
            rx.image(
                src=ResultDialog.url,
                alt="Enlarged result of #" + ResultDialog.node_id.to_string(),  # type: ignore[attr-defined]
                width="100%",
                max_height="70vh",
                object_fit="contain",
                margin_y="3",
            ),
            rx.hstack(
                rx.el.a(
                    rx.icon("download", size=16),
                    "Download",
                    href=ResultDialog.url,
                    download=ResultDialog.file_name,
                    # Rendered as a client-side router link: a target keeps the router's hands off the
                    # click, so the browser downloads (the download attribute wins over the target).
                    target="_blank",
                    rel="noopener",
                    style={"display": "inline-flex", "gap": "6px", "align_items": "center"},
                ),
                rx.spacer(),
                rx.cond(
                    is_current,
                    rx.fragment(),
                    rx.button(
                        "Use this result",
                        on_click=[
                            ProjectRoom.on_node("use_result", ResultDialog.node_id, ResultDialog.url),
                            ResultDialog.set_open(False),
                        ],
                    ),
                ),
                rx.dialog.close(rx.button("Close", variant="soft", color_scheme="gray")),
                align="center",
                width="100%",
            ),
            max_width="min(900px, 95vw)",
        ),
        open=ResultDialog.is_open,
        on_open_change=ResultDialog.set_open,
    )
