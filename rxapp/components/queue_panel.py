"""The queue as a panel: its own scroll area, the `Show` filter, the active count, `Older jobs`,
and at phone width its rows as cards with their actions in view.

The filter is this tab's alone and costs no re-render: it is an attribute on the table's root that a
style rule reads against each row's `data-status` (rows not shown are `display: none`, out of
the accessibility tree too). `Older jobs` asks the server for the page past the oldest job this
tab holds (`ProjectRoom.older_jobs`); the room store keeps those rows, live, under the others.
"""

from __future__ import annotations

import reflex as rx
from reflex.experimental.client_state import ClientStateVar

from rxapp.components.layout import PHONE_MAX_PX
from rxapp.realtime.room_store import jobs, more_jobs
from rxapp.states.room import ProjectRoom

#: `Show` choices: the value, its label, and the statuses its rows have (all: every row).
SHOW = (
    ("all", "all", ()),
    ("running", "running", ("queued", "submitted", "running")),
    ("failed", "failed", ("failed",)),
    ("completed", "completed", ("completed",)),
)
ACTIVE = SHOW[1][2]
#: Below this width the rows become cards (the table would scroll sideways, its actions out of view).
CARD_BREAKPOINT_PX = PHONE_MAX_PX


def _filter_css() -> str:
    rules = []
    for value, _, statuses in SHOW:
        if statuses:
            others = "".join(f':not([data-status="{s}"])' for s in statuses)
            rules.append(f'.queue-panel [data-show="{value}"] tr[data-status]{others} {{ display: none !important; }}')
    return "\n".join(rules)


QUEUE_CSS = (
    _filter_css()
    + f"""
.queue-panel thead th {{ position: sticky; top: 0; background: var(--color-panel-solid); z-index: 1; }}
@media (max-width: {CARD_BREAKPOINT_PX}px) {{
  .queue-panel thead {{ display: none; }}
  /* Radix's table is `height: 0` (a table's minimum) in a fit-content scroll viewport. */
  .queue-panel table, .queue-panel tbody {{ display: block; width: 100%; height: auto; }}
  .queue-panel .rt-ScrollAreaViewport > * {{ width: 100% !important; }}
  .queue-panel tr[data-testid="queue-row"] {{
    display: flex; flex-wrap: wrap; align-items: center; gap: 4px 12px; padding: 8px; margin-bottom: 8px;
    border: 1px solid var(--gray-6); border-radius: 8px;
  }}
  .queue-panel tr[data-testid="queue-row"] > td {{ display: block; padding: 0; box-shadow: none; max-width: 100%; }}
  .queue-panel tr[data-testid="queue-row"] > td:last-child {{ flex-basis: 100%; }}
  .queue-panel tr[data-testid="queue-row"] button {{ min-height: 44px; min-width: 44px; }}
  .queue-panel tr[data-testid="timeline"], .queue-panel tr[data-testid="timeline"] > td {{ display: block; }}
}}
"""
)

queue_show = ClientStateVar.create("queueShow", default="all")
shown = queue_show.value.to(str)

_ACTIVE_COUNT = rx.Var(
    f"String(({jobs}).filter((job) => {list(ACTIVE)!r}.includes(job.status)).length)",
    _var_data=jobs._get_all_var_data(),
).to(str)
#: The oldest job this tab holds: the next page starts after it.
_OLDEST_JOB = rx.Var(f"((({jobs}).at(-1))?.id ?? '')", _var_data=jobs._get_all_var_data()).to(str)


def queue_controls() -> rx.Component:
    """`Show` and the count of active jobs, beside the heading."""
    return rx.hstack(
        queue_show,
        rx.el.label(
            rx.text("Show", size="2"),
            rx.el.select(
                *(rx.el.option(label, value=value) for value, label, _ in SHOW),
                value=shown,
                on_change=lambda value: queue_show.set_value(value),
                style={"padding": "4px", "border_radius": "6px", "border": "1px solid var(--gray-7)"},
            ),
            style={"display": "inline-flex", "gap": "6px", "align_items": "center"},
        ),
        rx.text(_ACTIVE_COUNT, " active", size="2", color_scheme="gray", data_testid="queue-active"),
        align="center",
        spacing="3",
    )


def older_jobs_button() -> rx.Component:
    """Only when the project has jobs past those held."""
    return rx.cond(
        more_jobs,
        rx.button("Older jobs", variant="outline", size="2", on_click=ProjectRoom.older_jobs(_OLDEST_JOB)),
    )


def scroll_area(*children: rx.Component) -> rx.Component:
    """The queue's own scroll area: a long queue scrolls inside it, not the page.

    Focusable, so a keyboard scrolls it too.
    """
    return rx.box(
        *children,
        tab_index=0,
        aria_label="Queue rows",
        role="group",
        overflow="auto",
        max_height="min(75vh, 900px)",
        width="100%",
        data_testid="queue-scroll",
    )
