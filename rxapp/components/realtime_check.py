"""The `Check realtime` dialog: each hop of the self-test with its time, verdict and what to check."""

from __future__ import annotations

import reflex as rx
from reflex.experimental.client_state import ClientStateVar
from reflex.vars import ObjectVar

from core.realtime.selftest import Hop
from rxapp.states.realtime_check import RealtimeCheckState
from rxapp.states.room import ProjectRoom

VERDICT_COLOURS = {"ok": "green", "failed": "red", "skipped": "gray"}


def _hop_row(hop: ObjectVar[Hop]) -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.badge(hop.verdict, color_scheme=rx.match(hop.verdict, *VERDICT_COLOURS.items(), "gray")),
            rx.text(hop.name, size="2", weight="medium", flex="1"),
            rx.text(hop.at_ms, " ms", size="1", color_scheme="gray"),
            align="center",
            width="100%",
        ),
        rx.cond(hop.detail != "", rx.text(hop.detail, size="1", color_scheme="gray")),
        rx.cond(hop.fix != "", rx.text("Check: ", hop.fix, size="1", color_scheme="red", data_testid="check-fix")),
        spacing="1",
        width="100%",
        data_testid="check-hop",
        data_verdict=hop.verdict,
    )


#: Whether the dialog is open: it is opened from the `Diagnostics` menu, which closes as the
#: dialog takes the focus, so the dialog cannot live inside it.
check_open = ClientStateVar.create("realtimeCheckOpen", default=False)


def diagnostics_menu() -> rx.Component:
    """`Diagnostics`: a small menu beside the toolbar's actions, holding `Check realtime`."""
    return rx.fragment(
        check_open,
        rx.popover.root(
            rx.popover.trigger(
                rx.icon_button(rx.icon("activity"), variant="outline", aria_label="Diagnostics", title="Diagnostics")
            ),
            rx.popover.content(
                rx.vstack(
                    rx.text("Diagnostics", size="1", weight="bold", color_scheme="gray"),
                    rx.popover.close(
                        rx.button(
                            rx.icon("activity"),
                            "Check realtime",
                            variant="soft",
                            on_click=check_open.set_value(True),
                            width="100%",
                        )
                    ),
                    spacing="2",
                ),
                aria_label="Diagnostics",
            ),
        ),
        _check_dialog(),
    )


def _check_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Check realtime"),
            rx.dialog.description(
                "Runs a test job through the whole chain with the local provider, including a real webhook "
                "to this app's public URL. It shows in no queue and no node.",
                size="2",
            ),
            rx.vstack(
                rx.foreach(RealtimeCheckState.hops, _hop_row),
                rx.cond(
                    RealtimeCheckState.outcome != "",
                    rx.text(
                        "Realtime check ",
                        RealtimeCheckState.outcome,
                        weight="bold",
                        color_scheme=rx.cond(RealtimeCheckState.outcome == "passed", "green", "red"),
                        data_testid="check-outcome",
                    ),
                ),
                spacing="3",
                width="100%",
                padding_y="3",
            ),
            rx.hstack(
                rx.button(
                    "Run check",
                    on_click=RealtimeCheckState.run(ProjectRoom.project_id),  # type: ignore[misc]
                    loading=RealtimeCheckState.running,
                ),
                rx.dialog.close(rx.button("Close", variant="soft", color_scheme="gray")),
                justify="end",
                width="100%",
            ),
            max_width="640px",
        ),
        open=check_open.value.to(bool),
        on_open_change=lambda opened: check_open.set_value(opened),
    )
