"""`Delete project`, for its owner: confirmed by typing the project's name (core/notebook/project_removal.py)."""

from __future__ import annotations

import reflex as rx
from reflex.experimental.client_state import ClientStateVar

from rxapp.realtime.room_store import is_owner, project_name
from rxapp.states.room import ProjectRoom

typed = ClientStateVar.create("deleteProjectTyped", default="")
typed_name = typed.value.to(str)


def delete_project_dialog() -> rx.Component:
    return rx.cond(
        is_owner,
        rx.alert_dialog.root(
            typed,
            rx.alert_dialog.trigger(
                rx.icon_button(
                    rx.icon("trash-2"),
                    variant="soft",
                    color_scheme="red",
                    aria_label="Delete project",
                    title="Delete project",
                )
            ),
            rx.alert_dialog.content(
                rx.alert_dialog.title("Delete ", project_name, "?"),
                rx.alert_dialog.description(
                    "Its nodes, results and queue go for everyone on it;"
                    " its images go unless another project uses them."
                ),
                rx.el.label(
                    rx.text("Type the project's name to confirm", size="2"),
                    rx.input(value=typed_name, on_change=lambda text: typed.set_value(text), width="100%"),
                    style={"display": "flex", "flex_direction": "column", "gap": "4px", "margin_top": "12px"},
                ),
                rx.hstack(
                    rx.alert_dialog.cancel(rx.button("Keep it", variant="soft", color_scheme="gray")),
                    rx.alert_dialog.action(
                        rx.button(
                            "Delete project",
                            color_scheme="red",
                            disabled=typed_name != project_name,
                            on_click=ProjectRoom.delete_project(typed_name),
                        )
                    ),
                    justify="end",
                    margin_top="3",
                ),
            ),
            on_open_change=lambda _: typed.set_value(""),
        ),
    )
