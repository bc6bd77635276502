"""A node's `Images` (jobs per Generate, 1-4) and, for a model that takes one, its `Seed`."""

from __future__ import annotations

import reflex as rx
from reflex.vars import ObjectVar

from core.notebook.canvas import MAX_BATCH
from models.views import NodeView
from rxapp.runtime import core
from rxapp.states.room import ProjectRoom


def _model_seeds() -> rx.Var:
    """Which models draw from a seed the node may set (read when the page is built, not on import)."""
    return rx.Var.create({m.id: m.takes_seed for m in core.registry.all_models()})


_FIELD = {"padding": "4px", "border_radius": "6px", "border": "1px solid var(--gray-7)"}


def batch_seed_controls(node: ObjectVar[NodeView]) -> rx.Component:
    takes_seed = _model_seeds().to(dict[str, bool])[node.model].to(bool)
    return rx.hstack(
        rx.el.label(
            rx.text("Images", size="2"),
            rx.el.select(
                *(rx.el.option(str(n), value=str(n)) for n in range(1, MAX_BATCH + 1)),
                value=node.batch_size.to_string(),
                on_change=lambda count: ProjectRoom.on_node("batch_size", node.id, count),
                style=_FIELD,
            ),
            style={"display": "inline-flex", "gap": "6px", "align_items": "center"},
        ),
        rx.cond(
            takes_seed,
            rx.el.label(
                rx.text("Seed", size="2"),
                rx.input(
                    value=node.seed,
                    on_change=lambda seed: ProjectRoom.on_node("seed", node.id, seed),
                    placeholder="random",
                    input_mode="numeric",
                    width="120px",
                    size="1",
                ),
                style={"display": "inline-flex", "gap": "6px", "align_items": "center"},
            ),
        ),
        align="center",
        spacing="3",
        width="100%",
    )
