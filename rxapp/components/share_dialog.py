"""`Share`: the project's members and invitations, and for the owner the controls to add
(invite), re-role and remove them, and each invitation's link to copy and send."""

from __future__ import annotations

from typing import cast

import reflex as rx
from reflex.event import EventSpec
from reflex.vars import ObjectVar

from core.people.access import SHARED_ROLES, Role
from core.people.sharing import MemberView
from rxapp.realtime.room_store import is_owner, members
from rxapp.states.sharing import ShareState

#: The owner's invitation links, by invitation id (typed as the Var it is at class level).
_links = cast(ObjectVar[dict[str, str]], ShareState.links)
_SELECT_STYLE = {"padding": "4px", "border_radius": "6px", "border": "1px solid var(--gray-7)"}


def _role_options() -> list[rx.Component]:
    return [rx.el.option(role.value, value=role.value) for role in SHARED_ROLES]


def _member(member: ObjectVar[MemberView]) -> rx.Component:
    return rx.cond(member.invite_id != 0, _invited(member), _joined(member))


def _joined(member: ObjectVar[MemberView]) -> rx.Component:
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
                _remove_button(member, ShareState.remove(member.user_id)),
            ),
            rx.badge(member.role),
        ),
        width="100%",
        align="center",
        data_testid="member",
        data_email=member.email,
        data_role=member.role,
        data_state=rx.cond(member.role == Role.OWNER.value, "owner", "member"),
    )


def _invited(member: ObjectVar[MemberView]) -> rx.Component:
    """An invitation: the same row whether or not an account uses the email (it may have access already)."""
    key = member.invite_id.to_string()
    link = _links[key]
    return rx.vstack(
        rx.hstack(
            rx.text(member.email, size="2", flex="1"),
            rx.badge(rx.cond(member.expired, "invited · link expired", "invited"), color_scheme="amber"),
            rx.badge(member.role),
            rx.cond(is_owner, _remove_button(member, ShareState.revoke(member.invite_id))),
            width="100%",
            align="center",
        ),
        rx.cond(
            is_owner & member.expired,
            rx.text("Add the email again for a new link.", size="1", color_scheme="gray"),
        ),
        rx.cond(
            is_owner & ~member.expired,
            rx.cond(
                _links.contains(key),
                rx.hstack(
                    rx.input(
                        value=link,
                        read_only=True,
                        aria_label="Invitation link for " + member.email,
                        size="1",
                        flex="1",
                        on_focus=rx.call_script("document.activeElement.select()"),
                    ),
                    rx.button(
                        rx.icon("copy", size=14),
                        "Copy link",
                        size="1",
                        variant="soft",
                        aria_label="Copy link for " + member.email,
                        on_click=[rx.set_clipboard(link), rx.toast("Invitation link copied")],
                    ),
                    width="100%",
                ),
                rx.button("Show link", size="1", variant="ghost", on_click=ShareState.load_links),
            ),
        ),
        width="100%",
        spacing="1",
        data_testid="member",
        data_email=member.email,
        data_role=member.role,
        data_state="invited",
    )


def _remove_button(member: ObjectVar[MemberView], on_click: EventSpec) -> rx.Component:
    return rx.button(
        "Remove",
        size="1",
        variant="soft",
        color_scheme="red",
        aria_label="Remove " + member.email,
        on_click=on_click,
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
        # The links load when the dialog opens (`on_open_change`): an `on_click` on the trigger's button
        # made Reflex wrap it in a div carrying the trigger's ARIA attributes, which axe refuses.
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
                is_owner,
                rx.text(
                    "Anyone can be added by email: send them their invitation link; it works once, "
                    "for whoever opens it signed in.",
                    size="1",
                    color_scheme="gray",
                ),
            ),
            rx.cond(
                is_owner, _add_form(), rx.text("Only the owner changes the members.", size="2", color_scheme="gray")
            ),
            rx.flex(
                rx.dialog.close(rx.button("Close", variant="soft", color_scheme="gray")), justify="end", margin_top="3"
            ),
        ),
        on_open_change=ShareState.opened,
    )
