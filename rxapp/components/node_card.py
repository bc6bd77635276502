"""A node on the canvas: prompt, model, size, inputs (edit nodes), result and history."""

from __future__ import annotations

import reflex as rx
from reflex.vars import ObjectVar

from core.contract import NodeKind
from models.views import NodeView
from rxapp.components.room_store import finished_images, overwritten, typing_in
from rxapp.runtime import core
from rxapp.states.pending import LAST_REQUEST_ID, add_pending
from rxapp.states.presence import PresenceState
from rxapp.states.room import ProjectRoom
from rxapp.states.upload import UploadState

#: Each model's own aspect ratios, so the picker offers what the chosen model can draw.
MODEL_RATIOS = rx.Var.create({m.id: list(m.aspect_ratios) for m in core.registry.all_models()})


def _model_options(kind: NodeKind) -> list[rx.Component]:
    """Every model of the node's kind; ones that cannot run here are shown disabled, with why."""
    return [
        rx.el.option(
            f"{m.id} ({m.disabled_reason})" if m.disabled_reason else m.id, value=m.id, disabled=bool(m.disabled_reason)
        )
        for m in core.registry.all_models()
        if m.kind == kind
    ]


def _select(label: str, value: rx.Var | str, on_change, *options: rx.Component) -> rx.Component:
    return rx.el.select(
        *options,
        value=value,
        on_change=on_change,
        aria_label=label,
        style={
            "padding": "4px",
            "border_radius": "6px",
            "border": "1px solid var(--gray-7)",
            "min_width": "72px",
            "max_width": "100%",
        },
    )


def _inputs(node: ObjectVar[NodeView]) -> rx.Component:
    return rx.vstack(
        rx.text("Input images", size="2", weight="bold"),
        rx.hstack(
            rx.foreach(
                node.input_images,
                lambda url: rx.box(
                    rx.image(src=url, alt="Input image", width="64px", height="64px", object_fit="cover"),
                    rx.icon_button(
                        "x",
                        size="1",
                        variant="ghost",
                        aria_label="Remove input image",
                        on_click=ProjectRoom.on_node("remove_input", node.id, url),
                    ),
                ),
            ),
            wrap="wrap",
        ),
        _select(
            "Add input from node",
            "",
            lambda url: ProjectRoom.on_node("add_input", node.id, url),
            rx.el.option("Add a result of another node…", value=""),
            rx.foreach(finished_images(), lambda url: rx.el.option(url, value=url)),
        ),
        rx.button("Upload images", size="1", variant="outline", on_click=UploadState.choose_files(node.id)),
        spacing="2",
        width="100%",
    )


def _prompt_notice(node: ObjectVar[NodeView]) -> rx.Component:
    """Last write wins, but not silently: who is in this prompt, and whether the text changed under you."""
    here = typing_in(node.id)
    return rx.fragment(
        rx.cond(
            overwritten(node.id),
            rx.callout(
                "Someone else changed this prompt after you typed: the text above is theirs.",
                icon="info",
                color_scheme="amber",
                size="1",
                role="status",
                data_testid="prompt-overwritten",
            ),
        ),
        rx.cond(
            here != "", rx.text("In this prompt: ", here, size="1", color_scheme="gray", data_testid="typing-here")
        ),
    )


def node_card(node: ObjectVar[NodeView]) -> rx.Component:
    is_edit = node.kind == NodeKind.IMAGE_EDIT.value
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.badge(rx.cond(is_edit, "Image edit", "Text to image")),
                rx.text("#", node.id, size="2", color_scheme="gray"),
                rx.spacer(),
                rx.icon_button(
                    "trash-2",
                    size="1",
                    variant="ghost",
                    color_scheme="red",
                    aria_label="Delete node",
                    on_click=ProjectRoom.on_node("delete", node.id, ""),
                ),
                width="100%",
            ),
            rx.text_area(
                value=node.prompt,
                on_change=lambda text: ProjectRoom.on_node("prompt", node.id, text),
                aria_label="Prompt",
                placeholder="Describe the image…",
                max_length=core.settings.max_prompt_chars,
                width="100%",
                on_focus=PresenceState.typing_in(node.id),
                on_blur=PresenceState.typing_in(0),
            ),
            _prompt_notice(node),
            rx.hstack(
                _select(
                    "Model",
                    node.model,
                    lambda model: ProjectRoom.on_node("model", node.id, model),
                    rx.cond(
                        is_edit,
                        rx.fragment(*_model_options(NodeKind.IMAGE_EDIT)),
                        rx.fragment(*_model_options(NodeKind.TEXT_TO_IMAGE)),
                    ),
                ),
                _select(
                    "Aspect ratio",
                    node.aspect_ratio,
                    lambda ratio: ProjectRoom.on_node("aspect_ratio", node.id, ratio),
                    rx.foreach(
                        MODEL_RATIOS.to(dict[str, list[str]])[node.model].to(list[str]),
                        lambda ratio: rx.el.option(ratio, value=ratio),
                    ),
                ),
                rx.spacer(),
                rx.button(
                    "Generate",
                    on_click=[
                        add_pending(node.id, node.model),
                        ProjectRoom.generate(node.id, LAST_REQUEST_ID, rx.Var("Date.now()")),
                    ],
                ),
                width="100%",
                align="center",
            ),
            rx.cond(is_edit, _inputs(node)),
            rx.cond(
                node.error != "",
                rx.callout(node.error, icon="triangle-alert", color_scheme="red", size="1", data_testid="node-error"),
            ),
            rx.cond(
                node.image_url != "",
                rx.image(
                    src=node.image_url,
                    alt="Result of node #" + node.id.to_string(),
                    width="100%",
                    border_radius="8px",
                    data_testid="node-result",
                ),
                rx.center(
                    rx.text("No result yet", color_scheme="gray", size="2"),
                    height="120px",
                    width="100%",
                    background="var(--gray-3)",
                    border_radius="8px",
                ),
            ),
            rx.cond(
                node.history.length() > 1,
                rx.hstack(
                    rx.foreach(
                        node.history,
                        lambda url: rx.image(
                            src=url, alt="Earlier result", width="40px", height="40px", object_fit="cover"
                        ),
                    ),
                    wrap="wrap",
                    data_testid="node-history",
                ),
            ),
            spacing="3",
            width="100%",
        ),
        width="340px",
        flex_shrink="0",
        data_testid="node",
        data_node_id=node.id,
        key=node.id,  # one changed node re-renders its card only
    )
