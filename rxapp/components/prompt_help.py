"""Errors where they happen, under a node's prompt: why Generate would refuse an empty prompt,
and a counter as the prompt nears `MAX_PROMPT_CHARS` (the field stops there)."""

from __future__ import annotations

import reflex as rx
from reflex.vars import ObjectVar

from models.views import NodeView
from rxapp.runtime import core

#: The counter shows from this share of the limit on.
COUNT_FROM = 0.8


def prompt_empty(node: ObjectVar[NodeView]) -> rx.Var[bool]:
    return node.prompt.to(str).strip() == ""


def prompt_help(node: ObjectVar[NodeView]) -> rx.Component:
    """One line, kept when empty: a card whose height changes moves the cards after it."""
    limit = core.settings.max_prompt_chars
    length = node.prompt.to(str).length()
    return rx.hstack(
        rx.cond(
            prompt_empty(node),
            rx.text("Write a prompt to generate.", size="1", color="var(--amber-11)", data_testid="prompt-empty"),
        ),
        rx.spacer(),
        rx.cond(
            length >= int(limit * COUNT_FROM),
            rx.text(
                length.to_string(),
                f" / {limit}",
                size="1",
                color=rx.cond(length >= limit, "var(--red-11)", "var(--gray-11)"),
                data_testid="prompt-count",
            ),
        ),
        width="100%",
        min_height="1.2em",
        margin_top="-8px",
    )
