"""`Share`: the project's members, and for the owner the controls to add, re-role and remove them."""

from __future__ import annotations

import reflex as rx
from reflex.vars import ObjectVar

from core.access import SHARED_ROLES, Role
from core.sharing import MemberView
from rxapp.components.room_store import is_owner, members
from rxapp.states.sharing import ShareState

_SELECT_STYLE = {"padding": "4px", "border_radius": "6px", "border": "1px solid var(--gray-7)"}


def _role_options() -> list[rx.Component]:
    return [rx.el.option(role.value, value=role.value) for role in SHARED_ROLES]


def _member(member: ObjectVar[MemberView]) -> rx.Component:
    managed = is_owner & (member.role != Role.OWNER.value)
    return rx.hstack(
        rx.text(member.email, size="2", flex="1"),
        rx.cond(
            managed,
            rx.hstack(
                rx.el.select(
                    *_role_options(),
                    value=member.role,
                    on_change=lambda role: ShareState.set_role(member.user_id, role),
                    aria_label="Access of " + member.email,
                    style=_SELECT_STYLE,
                ),
                rx.button(
                    "Remove",
                    size="1",
                    variant="soft",
                    color_scheme="red",
                    aria_label="Remove " + member.email,
                    on_click=ShareState.remove(member.user_id),
                ),
            ),
            rx.badge(member.role),
        ),
        width="100%",
        align="center",
        data_testid="member",
        data_email=member.email,
        data_role=member.role,
        key=member.user_id,
    )


def _add_form() -> rx.Component:
    return rx.el.form(
        rx.hstack(
            rx.input(name="email", aria_label="Email", placeholder="colleague@example.com", flex="1"),
            rx.el.select(*_role_options(), name="role", aria_label="Role", default_value="editor", style=_SELECT_STYLE),
            rx.button("Add", type="submit"),
            width="100%",
        ),
        on_submit=ShareState.add,
        reset_on_submit=True,
        width="100%",
    )


def share_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.trigger(rx.button(rx.icon("users"), "Share", variant="outline", aria_label="Share")),
        rx.dialog.content(
            rx.dialog.title("Share this project"),
            rx.dialog.description(
                "Editors may do everything but delete the project or change its members; "
                "viewers see everything live and change nothing.",
                size="2",
            ),
            rx.vstack(rx.foreach(members, _member), spacing="2", width="100%", margin_y="3"),
            rx.cond(
                is_owner, _add_form(), rx.text("Only the owner changes the members.", size="2", color_scheme="gray")
            ),
            rx.flex(
                rx.dialog.close(rx.button("Close", variant="soft", color_scheme="gray")), justify="end", margin_top="3"
            ),
        ),
    )
