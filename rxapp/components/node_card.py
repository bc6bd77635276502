"""A node on the canvas: prompt, model, size, inputs (edit nodes), result and history."""

from __future__ import annotations

import reflex as rx
from reflex.event import EventChain, passthrough_event_spec
from reflex.vars import ObjectVar

from core.contract import NodeKind
from models.views import HistoryEntry, NodeView
from rxapp.components.batch_seed import batch_seed_controls
from rxapp.components.images import CARD_IMAGE_SIZES, copies, stored_image
from rxapp.components.progress import node_progress, preview_else
from rxapp.components.prompt_help import prompt_empty, prompt_help
from rxapp.components.waiting import waiting_notice
from rxapp.realtime.room_store import input_choices, node_by_id, nodes, overwritten, typing_in, waiting_job_of
from rxapp.runtime import core
from rxapp.states.pending import LAST_REQUEST_ID, add_pending
from rxapp.states.presence import PresenceState
from rxapp.states.result_dialog import ResultDialog
from rxapp.states.room import ProjectRoom
from rxapp.states.upload import UploadState


#: Each model's own aspect ratios, so the picker offers what the chosen model can draw.
def _model_ratios() -> rx.Var:
    """Each model's aspect ratios, for the page (read when the page is built, not on import)."""
    return rx.Var.create({m.id: list(m.aspect_ratios) for m in core.registry.all_models()})


def _model_options(kind: NodeKind) -> list[rx.Component]:
    """Every model of the node's kind; ones that cannot run here are shown disabled, with why."""
    return [
        rx.el.option(
            f"{m.id} ({m.disabled_reason})" if m.disabled_reason else m.id, value=m.id, disabled=bool(m.disabled_reason)
        )
        for m in core.registry.all_models()
        if m.kind == kind
    ]


def _select(label: str, value: rx.Var | str, on_change, *options: rx.Component, **props: object) -> rx.Component:
    return rx.el.select(
        *options,
        **props,
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


#: Browsers with customizable selects (`appearance: base-select`) draw an option's thumbnail;
#: others show the option's text alone, which names the node all the same.
PICKER_CSS = """
select.node-picker, select.node-picker::picker(select) { appearance: base-select; }
select.node-picker option { display: flex; gap: 8px; align-items: center; }
select.node-picker option img { width: 32px; height: 32px; object-fit: cover; border-radius: 4px; }
select.node-picker::picker(select) {
  border: 1px solid var(--gray-7); border-radius: 6px; background: var(--color-panel-solid); padding: 4px;
}
"""


def _choice(choice: rx.Var) -> rx.Component:
    """A node offered as an input: its thumbnail (when it has a result) and `#<id> · first words`."""
    return rx.el.option(
        rx.cond(
            choice["image"],  # type: ignore[index]
            rx.el.img(src=choice["image"], src_set=copies(choice["image"]), sizes="32px", alt=""),  # type: ignore[index]
        ),
        choice["label"],  # type: ignore[index]
        value=choice["value"],  # type: ignore[index]
    )


def _input_node(node: ObjectVar[NodeView], source_id: rx.Var) -> rx.Component:
    """An input that follows another node: its current result, or why there is none."""
    source = node_by_id(source_id)
    image = source["image_url"].to(str)
    return rx.box(
        rx.cond(
            image != "",
            stored_image(image, alt="Input image", sizes="64px", width="64px", height="64px", object_fit="cover"),
            rx.center(
                rx.text(rx.cond(source["id"], "no result yet", "deleted"), size="1"),
                width="64px",
                height="64px",
                background="var(--gray-4)",
            ),
        ),
        rx.hstack(
            rx.text(
                "uses #",
                source_id.to_string(),  # type: ignore[attr-defined]
                rx.cond(source["id"], "", " (deleted)"),
                size="1",
                data_testid="input-node",
            ),
            rx.icon_button(
                "x",
                size="1",
                variant="ghost",
                aria_label="Remove input #" + source_id.to_string(),  # type: ignore[attr-defined]
                on_click=ProjectRoom.on_node("remove_input_node", node.id, source_id.to_string()),  # type: ignore[attr-defined]
            ),
            spacing="1",
            align="center",
        ),
    )


def _inputs(node: ObjectVar[NodeView]) -> rx.Component:
    return rx.vstack(
        rx.text("Input images", size="2", weight="bold"),
        rx.hstack(
            rx.foreach(node.input_nodes, lambda source_id: _input_node(node, source_id)),
            rx.foreach(
                node.input_images,
                lambda url: rx.box(
                    stored_image(url, alt="Input image", sizes="64px", width="64px", height="64px", object_fit="cover"),
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
            lambda source: ProjectRoom.on_node("add_input_node", node.id, source),
            rx.el.option("Use the result of another node…", value=""),
            rx.foreach(input_choices(node.id), _choice),
            class_name="node-picker",
        ),
        rx.button("Upload images", size="1", variant="outline", on_click=UploadState.choose_files(node.id)),
        spacing="2",
        width="100%",
    )


def _prompt_field(node: ObjectVar[NodeView]) -> rx.Component:
    """The prompt, with who else is in it laid over its corner.

    Over it, not under it: that line comes and goes whenever someone enters or leaves the
    prompt, and in the flow it moved the Generate button below by a line. A click pressed on
    the button just before was released on the card, and made no job.
    """
    return rx.box(
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
        typing_here(node_id=node.id),
        position="relative",
        width="100%",
    )


# The parts of a card that read the project's jobs, progress or presence are memoised components
# of their own: they re-render when those change, and the card (keyed, memoised on its row) does
# not. Rendered inline, every job change re-rendered every card with its selects and history.


@rx.memo
def typing_here(node_id: rx.Var[int]) -> rx.Component:
    """Who else has the cursor in this prompt."""
    here = typing_in(node_id)
    return rx.cond(
        here != "",
        rx.text(
            "In this prompt: ",
            here,
            size="1",
            color_scheme="gray",
            data_testid="typing-here",
            position="absolute",
            right="6px",
            bottom="4px",
            padding_x="4px",
            border_radius="4px",
            background_color="var(--color-panel-solid)",
            pointer_events="none",
        ),
    )


@rx.memo
def prompt_notice(node_id: rx.Var[int]) -> rx.Component:
    """Last write wins, but not silently: whether the text changed under you."""
    return rx.cond(
        overwritten(node_id),
        rx.callout(
            "Someone else changed this prompt after you typed: the text above is theirs.",
            icon="info",
            color_scheme="amber",
            size="1",
            role="status",
            data_testid="prompt-overwritten",
        ),
    )


def _open_result(
    node: ObjectVar[NodeView], url: rx.Var, *content: rx.Component, label: rx.Var | str, **props: object
) -> rx.Component:
    """A result as a button that opens it large (`components/result_dialog.py`)."""
    return rx.el.button(
        *content,
        **props,
        on_click=ResultDialog.show(node.id, url, node.prompt),
        title=label,
        data_opens_result="true",  # closing the lightbox gives it the focus back (keyboard.py)
        style={"padding": "0", "border": "none", "background": "none", "cursor": "zoom-in", "display": "block"},
    )


def _history_entry(node: ObjectVar[NodeView], entry: ObjectVar[HistoryEntry]) -> rx.Component:
    """One result in the history strip, its placeholder painted at once; the current one is marked."""
    current = entry.url == node.image_url
    return _open_result(
        node,
        entry.url,
        stored_image(
            entry.url,
            alt="Earlier result",
            sizes="40px",
            thumbhash=entry.thumbhash,
            width="40px",
            height="40px",
            object_fit="cover",
            border=rx.cond(current, "2px solid var(--accent-9)", "2px solid transparent"),
            border_radius="4px",
        ),
        label=rx.cond(current, "The current result", "Open this result large"),
        aria_current=rx.cond(current, "true", "false"),
    )


#: What a dragged card carries: only a card accepts it as a drop.
DRAG_TYPE = "application/x-canvas-node"


def _drag_handle(node: ObjectVar[NodeView]) -> rx.Component:
    """Drag a card by its grip onto another card to take its place (keyboard: Move up / Move down)."""
    start = (
        f"(e) => {{ e.dataTransfer.setData('{DRAG_TYPE}', String({node.id})); e.dataTransfer.effectAllowed = 'move'; }}"
    )
    return rx.box(
        rx.icon("grip-vertical", size=16),
        title="Drag onto another node to move it there",
        cursor="grab",
        display="inline-flex",
        data_testid="drag-handle",
        custom_attrs={"draggable": "true", "onDragStart": rx.Var(start, _var_data=node._get_all_var_data())},
    )


def _drop_target(node: ObjectVar[NodeView]) -> dict[str, rx.Var]:
    """A card's handlers for a dragged card: allow the drop, then move the dragged node here."""
    move_here = rx.Var.create(
        EventChain.create(
            value=lambda dragged: ProjectRoom.on_node("move_to", dragged, node.id.to_string()),
            args_spec=passthrough_event_spec(int),
            key="on_drop",
        )
    )
    over = f"(e) => {{ if (e.dataTransfer.types.includes('{DRAG_TYPE}')) e.preventDefault(); }}"
    drop = (
        f"(e) => {{ const dragged = Number(e.dataTransfer.getData('{DRAG_TYPE}')); if (!dragged) return;"
        f" e.preventDefault(); if (dragged !== {node.id}) ({move_here})(dragged); }}"
    )
    var_data = rx.vars.VarData.merge(node._get_all_var_data(), move_here._get_all_var_data())
    return {"onDragOver": rx.Var(over), "onDrop": rx.Var(drop, _var_data=var_data)}


def _is_end(node: ObjectVar[NodeView], index: str) -> rx.Var[bool]:
    """Whether the node is the one at `index` (JS over the list `n`): the first cannot move up, the last down."""
    return rx.Var(
        f"((n) => n[{index}]?.id === {node.id})({nodes})",
        _var_data=rx.vars.VarData.merge(nodes._get_all_var_data(), node._get_all_var_data()),
    ).to(bool)


def _header(node: ObjectVar[NodeView], is_edit: rx.Var[bool]) -> rx.Component:
    users = rx.Var(
        f"({nodes}).filter((n) => n.input_nodes.includes({node.id})).map((n) => '#' + n.id).join(', ')",
        _var_data=rx.vars.VarData.merge(nodes._get_all_var_data(), node._get_all_var_data()),
    ).to(str)

    def delete(**on_click: object) -> rx.Component:
        return rx.icon_button(
            "trash-2", size="1", variant="ghost", color_scheme="red", aria_label="Delete node", **on_click
        )

    return rx.hstack(
        _drag_handle(node),
        rx.badge(rx.cond(is_edit, "Image edit", "Text to image"), high_contrast=True),
        rx.text("#", node.id, size="2"),
        rx.spacer(),
        *(
            rx.icon_button(
                icon,
                size="1",
                variant="ghost",
                aria_label=label,
                on_click=ProjectRoom.on_node(action, node.id, ""),
                disabled=at_end,
            )
            for icon, label, action, at_end in (
                ("arrow-up", "Move up", "move_up", _is_end(node, "0")),
                ("arrow-down", "Move down", "move_down", _is_end(node, "n.length - 1")),
            )
        ),
        rx.cond(
            users == "",
            delete(on_click=ProjectRoom.on_node("delete", node.id, "")),
            # Deleting a node others use asks first; they keep a visible broken input.
            rx.alert_dialog.root(
                rx.alert_dialog.trigger(delete()),
                rx.alert_dialog.content(
                    rx.alert_dialog.title("Delete #", node.id, "?"),
                    rx.alert_dialog.description(
                        users,
                        " use",
                        rx.cond(users.contains(","), "", "s"),
                        " its result and will have a broken input.",
                    ),
                    rx.hstack(
                        rx.alert_dialog.cancel(rx.button("Keep it", variant="soft", color_scheme="gray")),
                        rx.alert_dialog.action(
                            rx.button("Delete", color_scheme="red", on_click=ProjectRoom.on_node("delete", node.id, ""))
                        ),
                        justify="end",
                        margin_top="3",
                    ),
                ),
            ),
        ),
        width="100%",
        align="center",
    )


@rx.memo
def node_waiting(node_id: rx.Var[int]) -> rx.Component:
    """Its job's provider failed in a way that may pass: when the next try comes."""
    job = waiting_job_of(node_id)
    return waiting_notice(job["waiting_reason"], job["retry_at"], data_testid="node-waiting")


def node_card(node: ObjectVar[NodeView]) -> rx.Component:
    # Keyed and memoised on its row: the store keeps an unchanged node the same object.
    return rx.fragment(card(node=node), key=node.id)


@rx.memo
def card(node: rx.Var[NodeView]) -> rx.Component:
    return _card(node.to(ObjectVar, NodeView))


@rx.memo
def progress_line(node: rx.Var[NodeView]) -> rx.Component:
    return node_progress(node.to(ObjectVar, NodeView))


@rx.memo
def result_box(node: rx.Var[NodeView]) -> rx.Component:
    """The result, or the running job's latest preview while there is one."""
    return _result_box(node.to(ObjectVar, NodeView))


@rx.memo
def generate_button(node: rx.Var[NodeView]) -> rx.Component:
    """Generate; its click adds the optimistic row (`pending_jobs`, which it reads)."""
    row = node.to(ObjectVar, NodeView)
    return rx.button(
        "Generate",
        # Why it would not run (an empty prompt), before the click says so.
        title=rx.cond(prompt_empty(row), "Write a prompt first", "Generate an image"),
        on_click=[
            add_pending(row.id, row.model),
            ProjectRoom.generate(row.id, LAST_REQUEST_ID, rx.Var("Date.now()")),
        ],
    )


def _card(node: ObjectVar[NodeView]) -> rx.Component:
    is_edit = node.kind == NodeKind.IMAGE_EDIT.value
    return rx.card(
        rx.vstack(
            _header(node, is_edit),
            _prompt_field(node),
            prompt_help(node),
            prompt_notice(node_id=node.id),
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
                        _model_ratios().to(dict[str, list[str]])[node.model].to(list[str]),
                        lambda ratio: rx.el.option(ratio, value=ratio),
                    ),
                ),
                rx.spacer(),
                generate_button(node=node),
                width="100%",
                align="center",
            ),
            batch_seed_controls(node),
            rx.cond(is_edit, _inputs(node)),
            # Its line is kept when empty, as are the result's box and the history's strip below: a card
            # whose height changes as others work moves the cards after it, and a press on Generate
            # released on another element makes no job (the stress suite lost clicks that way).
            rx.text(
                node.freshness,
                size="2",
                weight="medium",
                color="var(--amber-11)",
                min_height="1.5em",
                data_testid=rx.cond(node.freshness != "", "node-freshness", "node-fresh"),
            ),
            node_waiting(node_id=node.id),
            progress_line(node=node),
            rx.cond(
                node.error != "",
                rx.callout(node.error, icon="triangle-alert", color_scheme="red", size="1", data_testid="node-error"),
            ),
            result_box(node=node),
            rx.box(
                rx.cond(
                    node.history.length() > 1,
                    rx.hstack(
                        rx.foreach(node.history, lambda entry: _history_entry(node, entry)),
                        wrap="nowrap",
                        data_testid="node-history",
                    ),
                ),
                # One line that scrolls sideways, the same height with no, one or twenty results.
                height="52px",
                overflow_x="auto",
                overflow_y="hidden",
                width="100%",
            ),
            spacing="3",
            width="100%",
        ),
        width="min(340px, 100%)",
        flex_shrink="0",
        data_testid="node",
        data_node_id=node.id,
        custom_attrs=_drop_target(node),
    )


def _result_box(node: ObjectVar[NodeView]) -> rx.Component:
    return preview_else(node)(
        node.image_url != "",
        _open_result(
            node,
            node.image_url,
            stored_image(
                node.image_url,
                alt="Result of node #" + node.id.to_string(),
                sizes=CARD_IMAGE_SIZES,
                pixels=(node.image_width, node.image_height),
                thumbhash=node.image_hash,
                display="block",
                width="100%",
                height="auto",
                border_radius="8px",
                data_testid="node-result",
                # A stale node's image is dimmed: it no longer shows what the node says.
                opacity=rx.cond(node.freshness != "", "0.5", "1"),
                data_stale=rx.cond(node.freshness != "", "true", "false"),
            ),
            label="Open the result large",
        ),
        rx.center(
            rx.text("No result yet", size="2"),
            # The shape its result will have, so the result takes the place without moving anything.
            aspect_ratio=node.aspect_ratio.to(str).replace(":", " / "),
            width="100%",
            background="var(--gray-3)",
            border_radius="8px",
        ),
    )
