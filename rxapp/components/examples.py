"""An empty project offers a few example prompts: one click makes a text-to-image node with it."""

from __future__ import annotations

import reflex as rx

from rxapp.states.room import ProjectRoom

EXAMPLE_PROMPTS = (
    "A lighthouse on a cliff at dusk, oil painting",
    "A red fox curled up in fresh snow, soft morning light",
    "An isometric cozy reading room with plants, pastel colours",
)


def empty_project() -> rx.Component:
    return rx.vstack(
        rx.text("Add a node to start, or try an example:"),
        rx.flex(
            *(
                rx.button(
                    prompt,
                    variant="outline",
                    on_click=ProjectRoom.on_project("add_example", prompt),
                    # A long prompt wraps inside its button at phone width instead of widening the page.
                    style={"white_space": "normal", "height": "auto", "min_height": "32px", "text_align": "left"},
                    max_width="100%",
                )
                for prompt in EXAMPLE_PROMPTS
            ),
            wrap="wrap",
            gap="2",
        ),
        spacing="2",
        data_testid="examples",
    )
