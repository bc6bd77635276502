"""A result, large: what made it, ArrowLeft/ArrowRight through the node's results, `Compare`,
`Download` (named after the prompt), `Use this result` for an earlier one and `Use this seed`.

The image shows its 768-px copy at once and the original once that has loaded; `Download`
links the original itself, byte for byte.
"""

from __future__ import annotations

import reflex as rx

from rxapp.components.images import enlarged_image
from rxapp.components.keyboard import RETURN_FOCUS
from rxapp.realtime.room_store import node_by_id
from rxapp.states.result_dialog import ResultDialog
from rxapp.states.room import ProjectRoom

#: What made a result, in the order the lightbox lists it: (label, key of `ResultDialog.details`).
DETAILS = (
    ("Prompt", "prompt"),
    ("Model", "model"),
    ("Ratio", "aspect_ratio"),
    ("Provider", "provider"),
    ("Seed", "seed"),
    ("Made", "made_at"),
)


def _details() -> rx.Component:
    details = ResultDialog.details
    return rx.cond(
        details.length() > 0,  # type: ignore[attr-defined]  # a state field is a Var on the class
        rx.el.dl(
            *(
                rx.fragment(
                    rx.el.dt(label, style={"font_weight": "600"}),
                    rx.el.dd(rx.cond(details[key] != "", details[key], "—"), style={"margin": "0"}),  # type: ignore[index]
                )
                for label, key in DETAILS
            ),
            style={
                "display": "grid",
                "grid_template_columns": "max-content 1fr",
                "gap": "2px 12px",
                "font_size": "14px",
                "margin": "0",
                "overflow_wrap": "anywhere",
            },
            data_testid="result-details",
        ),
    )


def _image(url: rx.Var, alt: rx.Var | str, caption: str = "") -> rx.Component:
    image = enlarged_image(url, alt=alt, width="100%", max_height="60vh", object_fit="contain")  # type: ignore[arg-type]
    return rx.box(image, rx.text(caption, size="1", text_align="center") if caption else rx.fragment(), flex="1")


def result_dialog() -> rx.Component:
    node = node_by_id(ResultDialog.node_id)  # type: ignore[arg-type]  # a state field is a Var on the class
    is_current = node["image_url"] == ResultDialog.url
    alt = "Enlarged result of #" + ResultDialog.node_id.to_string()  # type: ignore[attr-defined]
    compare_with = rx.cond(is_current, ResultDialog.neighbour, node["image_url"].to(str))
    seed = ResultDialog.details["seed"]  # type: ignore[index]
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Result of #", ResultDialog.node_id),
            rx.dialog.description(rx.cond(is_current, "The node's current result", "An earlier result of the node")),
            rx.cond(
                ResultDialog.comparing & (compare_with != ""),
                rx.hstack(
                    _image(ResultDialog.url, alt, "This result"),  # type: ignore[arg-type]
                    _image(
                        compare_with,
                        "Compared result of #" + ResultDialog.node_id.to_string(),  # type: ignore[attr-defined]
                        "Compared with",
                    ),
                    width="100%",
                    spacing="3",
                    margin_y="3",
                    data_testid="result-compare",
                ),
                rx.box(_image(ResultDialog.url, alt), margin_y="3"),  # type: ignore[arg-type]
            ),
            _details(),
            rx.hstack(
                rx.icon_button(
                    "chevron-left",
                    variant="soft",
                    aria_label="Previous result",
                    title="Newer result (ArrowLeft)",
                    disabled=ResultDialog.index <= 0,
                    on_click=ResultDialog.step(-1),
                ),
                rx.icon_button(
                    "chevron-right",
                    variant="soft",
                    aria_label="Next result",
                    title="Older result (ArrowRight)",
                    disabled=ResultDialog.index >= ResultDialog.results.length() - 1,  # type: ignore[attr-defined]
                    on_click=ResultDialog.step(1),
                ),
                rx.el.a(
                    rx.icon("download", size=16),
                    "Download",
                    href=ResultDialog.url,
                    download=ResultDialog.file_name,
                    # Rendered as a client-side router link: a target keeps the router's hands off the
                    # click, so the browser downloads (the download attribute wins over the target).
                    target="_blank",
                    rel="noopener",
                    style={"display": "inline-flex", "gap": "6px", "align_items": "center"},
                ),
                rx.spacer(),
                rx.button(
                    "Compare",
                    variant="soft",
                    on_click=ResultDialog.compare,
                    disabled=compare_with == "",
                    aria_pressed=rx.cond(ResultDialog.comparing, "true", "false"),
                ),
                rx.cond(
                    (seed != "") & (node["id"].to(int) != 0),
                    rx.button(
                        "Use this seed",
                        variant="soft",
                        on_click=ProjectRoom.on_node("seed", ResultDialog.node_id, seed),
                    ),
                ),
                rx.cond(
                    is_current,
                    rx.fragment(),
                    rx.button(
                        "Use this result",
                        on_click=[
                            ProjectRoom.on_node("use_result", ResultDialog.node_id, ResultDialog.url),
                            ResultDialog.set_open(False),
                        ],
                    ),
                ),
                rx.dialog.close(rx.button("Close", variant="soft", color_scheme="gray")),
                align="center",
                width="100%",
                wrap="wrap",
            ),
            max_width="min(1100px, 95vw)",
            custom_attrs={"onCloseAutoFocus": RETURN_FOCUS},
        ),
        open=ResultDialog.is_open,
        on_open_change=ResultDialog.set_open,
    )
