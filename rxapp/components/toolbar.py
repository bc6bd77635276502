"""Project picker, rename and create, the add-node buttons, and `Check realtime`."""

from __future__ import annotations

import reflex as rx

from rxapp.components.realtime_check import realtime_check
from rxapp.runtime import core
from rxapp.states.feed import ProjectFeed
from rxapp.states.viewer import ViewerState


def toolbar() -> rx.Component:
    return rx.hstack(
        rx.heading("Canvas", size="5"),
        rx.el.select(
            rx.foreach(ProjectFeed.projects, lambda p: rx.el.option(p.name, value=p.id.to_string())),
            value=ProjectFeed.project_id.to_string(),  # type: ignore[attr-defined]  # a state field is a Var on the class
            on_change=ProjectFeed.switch_project,
            on_focus=ProjectFeed.refresh_projects,
            aria_label="Project",
            style={"padding": "4px", "border_radius": "6px", "border": "1px solid var(--gray-7)"},
        ),
        rx.input(
            value=ProjectFeed.project_name,
            on_change=ProjectFeed.rename_project,
            aria_label="Project name",
            max_length=core.settings.max_project_name_chars,
            width="220px",
        ),
        rx.button("New project", variant="outline", on_click=ProjectFeed.create_project),
        rx.spacer(),
        rx.button(
            rx.icon("type"),
            "Add text-to-image node",
            aria_label="Add text-to-image node",
            on_click=ProjectFeed.add_text_node,
        ),
        rx.button(
            rx.icon("image"),
            "Add image edit node",
            aria_label="Add image edit node",
            on_click=ProjectFeed.add_edit_node,
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
