"""The `Presence` region: who has this project open, in how many tabs, typing in which node."""

from __future__ import annotations

import reflex as rx
from reflex.vars import ObjectVar

from core.realtime.presence import PersonView
from rxapp.realtime.room_store import present


def _person(person: ObjectVar[PersonView]) -> rx.Component:
    return rx.badge(
        rx.text(person.email, weight="bold"),
        rx.text(rx.cond(person.tabs == 1, "1 tab", person.tabs.to_string() + " tabs")),
        rx.cond(
            person.nodes.length() > 0,
            rx.text("typing in #" + person.nodes.join(", #"), data_testid="presence-typing"),
        ),
        variant="surface",
        size="2",
        data_testid="presence-person",
        data_email=person.email,
        key=person.email,
    )


def presence_list() -> rx.Component:
    return rx.el.section(
        rx.hstack(
            rx.heading("Presence", size="2", id="presence-heading"),
            rx.foreach(present, _person),
            wrap="wrap",
            align="center",
            spacing="2",
        ),
        role="region",
        aria_labelledby="presence-heading",
        padding_y="2",
    )
