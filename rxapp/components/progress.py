"""A running job's live progress on its queue row and its node card, in every tab.

While a job is unfinished: a `progressbar` (its `aria-valuenow` the percent when the
provider reports one, indeterminate otherwise), `position N` while it waits in the
provider's queue, the elapsed time ticking, and its latest preview (alt `Preview ...`),
which the card shows where the result goes until the result replaces it. Rows come from
`room_progress` (`core/jobs/progress.py` through the room bridge); the elapsed time is counted
by the browser from the job's creation, so it ticks without a message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import reflex as rx
from reflex.vars import ObjectVar

from core.contract import JobStatus
from models.views import JobView, NodeView
from rxapp.realtime.room_store import jobs, room_progress

_ROWS = room_progress.value
#: JS array literal of the statuses of a job still on its way.
_UNFINISHED = str([status.value for status in JobStatus if not status.is_terminal])


def _var_data(*used: rx.Var) -> rx.vars.VarData | None:
    return rx.vars.VarData.merge(*(var._get_all_var_data() for var in used))


def _object(expression: str, *used: rx.Var) -> ObjectVar[dict[str, str]]:
    """A JS expression giving a row (`{}` when there is none), keeping what its inputs need."""
    return cast(ObjectVar[dict[str, str]], rx.Var(expression, _var_data=_var_data(*used)).to(dict[str, str]))


def _find_progress(job_id: rx.Var) -> str:
    """JS: the job's progress row, or null before its provider said anything."""
    return f"(({_ROWS}).find((row) => row.id === {job_id}) ?? null)"


def progress_of(job_id: rx.Var) -> ObjectVar[dict[str, str]]:
    """The job's progress row (`{}` before its provider said anything)."""
    return _object(f"({_find_progress(job_id)} ?? {{}})", _ROWS, job_id)


def unfinished_job_of(node_id: rx.Var) -> ObjectVar[dict[str, str]]:
    """The node's newest job still on its way (`{}` when none): the queue holds the newest first."""
    return _object(
        f"(({jobs}).find((job) => job.node_id === {node_id} && {_UNFINISHED}.includes(job.status)) ?? {{}})",
        jobs,
        node_id,
    )


#: The bar never moves between two reports. It steps to each new percent rather than sliding
#: there (Radix's 120 ms transition): a report comes up to 4 times a second, so the slide ran
#: half of every second, a frame each time in every tab watching (one tab watching a running job
#: cost Chromium 3.7 s of CPU in 10 s with it, 2.0 s without). And with no percent (a provider
#: that reports none) it is a still, faint full bar, not Radix's endless grow-and-shine
#: animation: a frame every 16 ms in every tab, 18-19% of a core for one tab watching one job
#: against 2-4% still (software compositing, as on a machine without a GPU or in CI). The
#: elapsed time beside it ticks once a second: that says the job is alive.
_INDETERMINATE = "& .rt-ProgressIndicator[data-state='indeterminate']"
_STILL = {
    "& .rt-ProgressIndicator": {"transition": "none"},
    _INDETERMINATE: {"animation": "none", "transform": "none", "opacity": "0.35"},
    _INDETERMINATE + "::after": {"animation": "none", "display": "none"},
}


def _bar(row: ObjectVar[dict[str, str]], label: rx.Var | str, **props: object) -> rx.Component:
    # Radix sets aria-valuenow from `value` only when it is a number: null leaves it indeterminate.
    percent: rx.Var[int] = rx.Var(f"({row}?.percent ?? null)", _var_data=row._get_all_var_data())
    return rx.progress(value=percent, max=100, aria_label=label, size="1", style=_STILL, **props)


def _position(row: ObjectVar[dict[str, str]], **props: object) -> rx.Component:
    return rx.cond(row["position"], rx.text("position ", row["position"].to(str), size="1", **props))


def _preview(row: ObjectVar[dict[str, str]], alt: rx.Var | str, **props: object) -> rx.Component:
    # One element for every preview: the browser keeps drawing the last one until the next has loaded.
    return rx.image(src=row["preview_url"], alt=alt, **props)


def progress_or_null(job_id: rx.Var) -> rx.Var:
    """The job's progress row, or null: the same value while nothing changed (a memoised queue
    line re-renders when it does; `progress_of`'s `{}` is a new object every time)."""
    return rx.Var(_find_progress(job_id), _var_data=_var_data(_ROWS, job_id))


def job_progress(job: ObjectVar[JobView], row: ObjectVar[dict[str, str]]) -> rx.Component:
    """The queue row's: bar, queue position and a thumbnail of the preview while the job runs;
    `row` the job's progress row (`progress_or_null`)."""
    unfinished = rx.Var(f"{_UNFINISHED}.includes({job.status})", _var_data=job._get_all_var_data()).to(bool)
    node = job.node_id.to_string()
    return rx.cond(
        unfinished,
        rx.hstack(
            _bar(row, "Progress of #" + node, width="64px", data_testid="job-progressbar"),
            _position(row, data_testid="job-position"),
            rx.cond(
                row["preview_url"],
                _preview(row, "Preview of #" + node, width="32px", height="32px", object_fit="cover"),
            ),
            align="center",
            spacing="2",
        ),
    )


def node_progress(node: ObjectVar[NodeView]) -> rx.Component:
    """The card's progress line: always there (empty when nothing runs), so the card keeps its height."""
    job = unfinished_job_of(node.id)
    row = progress_of(job["id"])
    return rx.box(
        rx.cond(
            job["id"],
            rx.hstack(
                _bar(row, "Progress of #" + node.id.to_string(), flex="1", data_testid="node-progressbar"),
                _position(row, data_testid="node-position"),
                rx.moment(
                    date=job["created_at"],
                    duration_from_now=True,
                    format="m:ss",
                    interval=1000,
                    size="1",
                    data_testid="node-elapsed",
                ),
                align="center",
                spacing="2",
                width="100%",
            ),
        ),
        height="20px",
        width="100%",
    )


def preview_else(node: ObjectVar[NodeView]) -> Callable[[rx.Var, rx.Component, rx.Component], rx.Component]:
    """`rx.cond` for the card's result box, except that the running job's latest preview, while
    there is one, takes the box (until the result replaces it)."""
    row = progress_of(unfinished_job_of(node.id)["id"])
    preview = _preview(
        row,
        "Preview of #" + node.id.to_string(),
        # The shape its result will have, so the result takes the place without moving anything.
        aspect_ratio=node.aspect_ratio.to(str).replace(":", " / "),
        width="100%",
        object_fit="cover",
        border_radius="8px",
        data_testid="node-preview",
    )

    def box(has_result: rx.Var, result: rx.Component, empty: rx.Component) -> rx.Component:
        return rx.cond(row["preview_url"], preview, rx.cond(has_result, result, empty))

    return box
