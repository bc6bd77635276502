"""Project picker, rename and create, the add-node buttons, `Share`, and the `Diagnostics` menu.

The changing controls are disabled for a viewer (the server refuses their events anyway).
"""

from __future__ import annotations

import reflex as rx
from reflex.event import EventSpec
from reflex.experimental.client_state import ClientStateVar

from rxapp.components.delete_project import delete_project_dialog
from rxapp.components.layout import PHONE_MAX_PX
from rxapp.components.realtime_check import diagnostics_menu
from rxapp.components.share_dialog import share_dialog
from rxapp.realtime.room_store import may_edit, project_autorun, project_name
from rxapp.runtime import core
from rxapp.states.room import ProjectRoom
from rxapp.states.viewer import ViewerState

#: At phone width the secondary controls fold into `Menu` (toggled here), so the first node
#: is within the first screen; wider, they sit in the toolbar's one line.
menu_open = ClientStateVar.create("toolbarMenuOpen", default=False)
_menu_shown = menu_open.value.to(bool)

# The toolbar is one wrapping line of flex items; its folded groups are `display: contents`
# when wide, so their controls are items of that line. At phone width those groups hide behind
# `Menu` and open as rows below it, after the add-node buttons, which stay in view with the
# project picker (so the first node is within the first screen).
TOOLBAR_CSS = f"""
.toolbar {{ display: flex; flex-wrap: wrap; align-items: center; gap: 8px; padding: 8px 0; width: 100%; }}
.toolbar-folded, .toolbar-add {{ display: contents; }}
.toolbar-menu-toggle {{ display: none !important; }}
.toolbar-project {{ min-width: 0; }}
.toolbar button {{ white-space: nowrap; }}
@media (max-width: {PHONE_MAX_PX}px) {{
  .toolbar-wide-only {{ display: none !important; }}
  .toolbar-menu-toggle {{ display: inline-flex !important; }}
  .toolbar-project, .toolbar-name {{ flex: 1 1 0; min-width: 0; }}
  .toolbar-name {{ width: auto !important; }}
  .toolbar-add {{ display: flex; gap: 8px; width: 100%; order: 1; }}
  .toolbar-add > button {{ flex: 1 1 0; min-width: 0; }}
  .toolbar-folded {{ display: none; }}
  .toolbar-folded[data-open="true"] {{
    display: flex; flex-wrap: wrap; align-items: center; gap: 8px; width: 100%; order: 2;
  }}
}}
"""


def toolbar() -> rx.Component:
    return rx.el.div(
        rx.el.style(TOOLBAR_CSS),
        menu_open,
        rx.heading("Canvas", size="4", class_name="toolbar-wide-only", white_space="nowrap"),
        _project_picker(),
        rx.input(
            value=project_name,
            on_change=lambda name: ProjectRoom.on_project("rename", name),
            aria_label="Project name",
            max_length=core.settings.max_project_name_chars,
            disabled=~may_edit,
            width="150px",
            class_name="toolbar-name",
        ),
        rx.icon_button(
            rx.icon("menu"),
            variant="soft",
            aria_label="Menu",
            aria_expanded=rx.cond(_menu_shown, "true", "false"),
            aria_controls="toolbar-folded",
            on_click=menu_open.set_value(~_menu_shown),
            class_name="toolbar-menu-toggle",
        ),
        rx.el.div(
            rx.icon_button(
                rx.icon("folder-plus"),
                variant="outline",
                aria_label="New project",
                title="New project",
                on_click=ProjectRoom.create_project,
            ),
            delete_project_dialog(),
            class_name="toolbar-folded",
            data_open=_menu_shown,
        ),
        rx.el.div(class_name="toolbar-wide-only", flex="1"),  # pushes the node actions to the right
        rx.el.div(
            _editing_button(
                "type", "Text-to-image", "Add text-to-image node", ProjectRoom.on_project("add_text_node", "")
            ),
            _editing_button("image", "Image edit", "Add image edit node", ProjectRoom.on_project("add_edit_node", "")),
            class_name="toolbar-add",
        ),
        rx.el.div(
            share_dialog(),
            rx.icon_button(
                rx.icon("undo-2"),
                aria_label="Undo",
                title="Undo your last edit (Ctrl/Cmd+Z)",
                variant="soft",
                on_click=ProjectRoom.undo_edit(0),
                disabled=~may_edit,
            ),
            _editing_button(
                "play", "Run all stale", "Run all stale", ProjectRoom.on_project("run_all_stale", ""), "soft"
            ),
            rx.el.label(
                rx.switch(
                    checked=project_autorun, on_change=ProjectRoom.set_autorun, aria_label="Autorun", disabled=~may_edit
                ),
                rx.text("Autorun", size="2"),
                title="Run a node by itself when a node it uses completes",
                style={"display": "inline-flex", "gap": "6px", "align_items": "center", "white_space": "nowrap"},
            ),
            rx.cond(may_edit, diagnostics_menu()),  # not for viewers
            account(),
            class_name="toolbar-folded",
            data_open=_menu_shown,
            id="toolbar-folded",
        ),
        class_name="toolbar",
    )


def _editing_button(icon: str, words: str, name: str, on_click: EventSpec, variant: str = "solid") -> rx.Component:
    """A button that changes the project (disabled for a viewer). Its visible `words` are part of
    its `name`, the name a screen reader says and tests find it by."""
    return rx.button(
        rx.icon(icon), words, aria_label=name, title=name, variant=variant, on_click=on_click, disabled=~may_edit
    )


def _project_picker() -> rx.Component:
    return rx.el.select(
        rx.foreach(
            ProjectRoom.projects,
            # This project's name comes live from its room; the others' from the last read.
            lambda p: rx.el.option(
                rx.cond(p.id == ProjectRoom.project_id, project_name, p.name),
                rx.cond(p.role != "owner", " (shared, " + p.role + ") · " + p.owner, ""),
                value=p.id.to_string(),
            ),
        ),
        value=ProjectRoom.project_id.to_string(),  # type: ignore[attr-defined]  # a state field is a Var on the class
        on_change=ProjectRoom.switch_project,
        on_focus=ProjectRoom.refresh_projects,
        aria_label="Project",
        class_name="toolbar-project",
        # A select is as wide as its longest option: a long name must not widen the page.
        style={"padding": "4px", "border_radius": "6px", "border": "1px solid var(--gray-7)", "max_width": "180px"},
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
            rx.text(
                ViewerState.email,
                size="2",
                color_scheme="gray",
                data_testid="signed-in-as",
                title=ViewerState.email,
                style={
                    "max_width": "140px",
                    "overflow": "hidden",
                    "text_overflow": "ellipsis",
                    "white_space": "nowrap",
                },
            ),
            rx.button("Sign out", variant="ghost", size="1", on_click=rx.call_script(SIGN_OUT)),
            align="center",
        ),
        # A document load: `/login` is a server page, not a Reflex route (client routing showed a 404).
        rx.el.a(rx.button("Sign in", variant="ghost", size="1"), href="/login", reload_document=True),
    )
