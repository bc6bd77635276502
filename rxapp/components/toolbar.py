"""Project picker, rename and create, the add-node buttons, `Share` and `Check realtime`.

The changing controls are disabled for a viewer (the server refuses their events anyway).
"""

from __future__ import annotations

import reflex as rx

from rxapp.components.realtime_check import realtime_check
from rxapp.components.room_store import may_edit, project_autorun, project_name
from rxapp.components.share_dialog import share_dialog
from rxapp.runtime import core
from rxapp.states.room import ProjectRoom
from rxapp.states.viewer import ViewerState


def toolbar() -> rx.Component:
    return rx.hstack(
        rx.heading("Canvas", size="5"),
        rx.el.select(
            rx.foreach(
                ProjectRoom.projects,
                # This project's name comes live from its room; the others' from the last read.
                lambda p: rx.el.option(
                    rx.cond(p.id == ProjectRoom.project_id, project_name, p.name),
                    rx.cond(p.role != "owner", " (shared, " + p.role + ")", ""),
                    value=p.id.to_string(),
                ),
            ),
            value=ProjectRoom.project_id.to_string(),  # type: ignore[attr-defined]  # a state field is a Var on the class
            on_change=ProjectRoom.switch_project,
            on_focus=ProjectRoom.refresh_projects,
            aria_label="Project",
            style={"padding": "4px", "border_radius": "6px", "border": "1px solid var(--gray-7)"},
        ),
        rx.input(
            value=project_name,
            on_change=lambda name: ProjectRoom.on_project("rename", name),
            aria_label="Project name",
            max_length=core.settings.max_project_name_chars,
            disabled=~may_edit,
            width="220px",
        ),
        rx.button("New project", variant="outline", on_click=ProjectRoom.create_project),
        rx.spacer(),
        rx.button(
            rx.icon("type"),
            "Add text-to-image node",
            aria_label="Add text-to-image node",
            on_click=ProjectRoom.on_project("add_text_node", ""),
            disabled=~may_edit,
        ),
        rx.button(
            rx.icon("image"),
            "Add image edit node",
            aria_label="Add image edit node",
            on_click=ProjectRoom.on_project("add_edit_node", ""),
            disabled=~may_edit,
        ),
        share_dialog(),
        rx.button(
            rx.icon("play"),
            "Run all stale",
            aria_label="Run all stale",
            variant="soft",
            on_click=ProjectRoom.on_project("run_all_stale", ""),
            disabled=~may_edit,
        ),
        rx.el.label(
            rx.switch(
                checked=project_autorun, on_change=ProjectRoom.set_autorun, aria_label="Autorun", disabled=~may_edit
            ),
            rx.text("Autorun", size="2"),
            title="Run a node by itself when a node it uses completes",
            style={"display": "inline-flex", "gap": "6px", "align_items": "center"},
        ),
        realtime_check(),
        account(),
        width="100%",
        align="center",
        wrap="wrap",
        padding_y="2",
    )


# A native form post (Reflex forms stop the browser's own submit), so the response can clear the cookie.
SIGN_OUT = (
    "const form = document.createElement('form'); form.method = 'post'; form.action = '/auth/logout';"
    " document.body.appendChild(form); form.submit();"
)


def account() -> rx.Component:
    """Who is working here; sign-in and sign-out are full page loads (the cookie is HttpOnly)."""
    return rx.cond(
        ViewerState.signed_in,
        rx.hstack(
            rx.text(ViewerState.email, size="2", color_scheme="gray", data_testid="signed-in-as"),
            rx.button("Sign out", variant="ghost", size="1", on_click=rx.call_script(SIGN_OUT)),
            align="center",
        ),
        rx.el.a(rx.button("Sign in", variant="ghost", size="1"), href="/login"),
    )
