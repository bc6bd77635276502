"""The Queue Monitor: every job of the project, live, in every tab."""

from __future__ import annotations

import reflex as rx
from reflex.vars import ObjectVar

from models.views import JobView, StepView
from rxapp.components.images import stored_image
from rxapp.components.progress import job_progress, progress_or_null
from rxapp.components.queue_panel import QUEUE_CSS, older_jobs_button, queue_controls, scroll_area, shown
from rxapp.components.waiting import waiting_notice
from rxapp.realtime.room_store import confirmed, jobs, may_edit, steps_of
from rxapp.states.pending import pending_jobs
from rxapp.states.result_dialog import ResultDialog
from rxapp.states.room import ProjectRoom
from rxapp.states.timeline import TimelineState

#: How much of a job id names the job it retries: enough to tell a project's jobs apart.
RETRY_ID_CHARS = 8
COLUMNS = ("Node", "Provider", "Model", "Status", "Elapsed", "Error", "Actions")
STATUS_COLOURS = {
    "queued": "gray",
    "submitted": "blue",
    "running": "amber",
    "completed": "green",
    "failed": "red",
    "cancelled": "gray",
}


def _status_badge(status: rx.Var) -> rx.Component:
    return rx.badge(
        status,
        color_scheme=rx.match(status, *STATUS_COLOURS.items(), "gray"),
        # High contrast: the soft badges' text fails WCAG AA on their own background.
        high_contrast=True,
        data_testid="job-status",
    )


def _elapsed(job: ObjectVar[JobView]) -> rx.Component:
    return rx.cond(
        job.elapsed != "",
        rx.text(job.elapsed, size="1"),
        rx.moment(date=job.created_at, duration_from_now=True, format="m:ss", interval=1000, size="1"),
    )


def _one_line(text: rx.Var, **props: object) -> rx.Component:
    """Small grey text cut to one line with an ellipsis; hovering shows it whole."""
    return rx.text(
        text,
        size="1",
        color_scheme="gray",
        title=text,
        white_space="nowrap",
        overflow="hidden",
        text_overflow="ellipsis",
        **props,
    )


def _step_line(step: ObjectVar[StepView]) -> rx.Component:
    return rx.hstack(
        rx.text("+", step.delta_ms, " ms", size="1", color_scheme="gray", width="80px", text_align="right"),
        rx.box(width="8px", height="8px", border_radius="50%", background="var(--accent-9)", flex_shrink="0"),
        rx.code(step.step, size="1"),
        _one_line(step.detail, min_width="0", flex="1"),
        rx.text(step.offset_ms, " ms", size="1", color_scheme="gray", flex_shrink="0"),
        align="center",
        width="100%",
        data_testid="timeline-step",
    )


def _timeline(job: ObjectVar[JobView]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.cond(
                TimelineState.stalled != "",
                rx.callout(
                    TimelineState.stalled, icon="clock", color_scheme="amber", size="1", data_testid="timeline-stalled"
                ),
            ),
            rx.vstack(rx.foreach(TimelineState.shown_steps, _step_line), spacing="1", width="100%", max_width="540px"),
            rx.button(
                "Details",
                size="1",
                variant="ghost",
                on_click=TimelineState.toggle_details,
                aria_pressed=rx.cond(TimelineState.details, "true", "false"),
                title="Show the chain's internal steps too",
            ),
            col_span=len(COLUMNS),
        ),
        data_testid="timeline",
    )


def _timeline_refresher() -> rx.Component:
    """Remounts, and so reloads the expanded timeline, whenever that job gains a step.

    The key sits on a fragment around the box: Reflex puts a component's mount hook in
    a wrapper around the element it renders, so a key on the box itself would change the
    element but never re-run the hook. It lives outside the queue's foreach because
    Reflex hoists mount hooks out of it.
    """
    expanded = TimelineState.expanded
    steps = steps_of(expanded)  # type: ignore[arg-type]  # a state field is a Var on the class
    return rx.cond(
        expanded != "",
        rx.fragment(rx.box(on_mount=TimelineState.reload, display="none"), key=expanded + "-" + steps),
    )


def _job_row(job: ObjectVar[JobView]) -> rx.Component:
    # Keyed by job id, and each line a memoised component of the row and what it shows of the
    # tab's state: a change re-renders the rows it changed, not all 200 (the store keeps an
    # unchanged row the same object). Rendering every row on every change made a Generate click
    # cost 0.35 s with an empty queue and 0.76 s with 200 rows.
    expanded = TimelineState.expanded == job.id
    return rx.fragment(
        queue_line(job=job, progress=progress_or_null(job.id), may_edit=may_edit, expanded=expanded),
        rx.cond(expanded, _timeline(job)),
        key=job.id,
    )


@rx.memo
def queue_line(
    job: rx.Var[JobView], progress: rx.Var[dict[str, str]], may_edit: rx.Var[bool], expanded: rx.Var[bool]
) -> rx.Component:
    """One job's line; `progress` its live progress row (null before its provider said anything)."""
    return _job_line(job.to(JobView), progress.to(dict[str, str]), may_edit, expanded)


def _job_line(
    job: ObjectVar[JobView], progress: ObjectVar[dict[str, str]], may_edit: rx.Var[bool], expanded: rx.Var[bool]
) -> rx.Component:
    unfinished = (job.status == "queued") | (job.status == "submitted") | (job.status == "running")
    return rx.table.row(
        rx.table.cell(
            rx.hstack(
                rx.cond(job.image_url != "", _thumbnail(job)),
                rx.box(
                    rx.text("#", job.node_id),
                    _one_line(job.prompt_words, max_width="160px", data_testid="job-prompt"),
                    rx.cond(
                        job.seed != "",
                        rx.text("seed ", job.seed, size="1", color_scheme="gray", data_testid="job-seed"),
                    ),
                    min_width="0",
                ),
                align="center",
                spacing="2",
            )
        ),
        rx.table.cell(job.provider),
        rx.table.cell(rx.code(job.model)),
        rx.table.cell(
            _status_badge(job.status),
            job_progress(job, progress),
            # The provider's own words (a log line, a wait), unless the live row already says its
            # place: "position 2 in queue" beside "position 2" said it twice.
            rx.cond(
                (job.progress != "") & ~progress["position"].to(bool),
                rx.text(job.progress, size="1", color_scheme="gray", data_testid="job-progress"),
            ),
            waiting_notice(job.waiting_reason, job.retry_at, data_testid="job-waiting"),
            rx.cond(
                job.retry_of != "",
                rx.text(
                    "retry of ",
                    job.retry_of[:RETRY_ID_CHARS],  # type: ignore[index]  # a StringVar at runtime
                    size="1",
                    color_scheme="gray",
                    data_testid="job-retry-of",
                ),
            ),
        ),
        rx.table.cell(_elapsed(job)),
        rx.table.cell(rx.text(job.error, color_scheme="red", size="1", data_testid="job-error"), max_width="220px"),
        rx.table.cell(
            rx.cond(
                unfinished,
                rx.button(
                    "Cancel",
                    size="1",
                    variant="soft",
                    on_click=ProjectRoom.on_job("cancel", job.id),
                    disabled=~may_edit,
                ),
            ),
            rx.cond(
                (job.status == "failed") | (job.status == "cancelled"),
                rx.button(
                    "Retry", size="1", variant="soft", on_click=ProjectRoom.on_job("retry", job.id), disabled=~may_edit
                ),
            ),
            rx.button(
                "Timeline",
                size="1",
                variant="ghost",
                on_click=TimelineState.toggle(job.id),
                aria_expanded=rx.cond(expanded, "true", "false"),
            ),
        ),
        data_testid="queue-row",
        data_job_id=job.id,
        data_status=job.status,
    )


def _thumbnail(job: ObjectVar[JobView]) -> rx.Component:
    """The job's result, small; a click opens it large."""
    return rx.el.button(
        stored_image(
            job.image_url,
            alt="Thumbnail of the result of #" + job.node_id.to_string(),
            sizes="32px",
            thumbhash=job.image_hash,
            width="32px",
            height="32px",
            object_fit="cover",
            border_radius="4px",
            loading="lazy",
            data_testid="job-thumbnail",
        ),
        on_click=ResultDialog.show(job.node_id, job.image_url, job.prompt_words),
        title="Open this result large",
        data_opens_result="true",
        style={"padding": "0", "border": "none", "background": "none", "cursor": "zoom-in", "display": "block"},
    )


def _optimistic_row(row: ObjectVar[dict[str, str]]) -> rx.Component:
    return rx.cond(
        confirmed(row["client_id"]),
        rx.fragment(),
        rx.table.row(
            rx.table.cell(rx.text("#", row["node_id"])),
            rx.table.cell("…"),
            rx.table.cell(rx.code(row["model"])),
            rx.table.cell(_status_badge(rx.Var.create("queued"))),
            rx.table.cell(""),
            rx.table.cell(""),
            rx.table.cell(""),
            data_testid="queue-row",
            data_optimistic="true",
            data_status="queued",
        ),
    )


def queue_monitor() -> rx.Component:
    return rx.el.section(
        rx.el.style(QUEUE_CSS),
        rx.hstack(
            rx.heading("Queue", size="4", id="queue-heading"),
            rx.spacer(),
            queue_controls(),
            align="center",
            wrap="wrap",
        ),
        scroll_area(
            rx.table.root(
                rx.table.header(rx.table.row(*(rx.table.column_header_cell(h) for h in COLUMNS))),
                rx.table.body(
                    rx.foreach(pending_jobs.value.to(list[dict[str, str]]), _optimistic_row),
                    rx.foreach(jobs, _job_row),
                ),
                size="1",
                width="100%",
                data_show=shown,
            ),
            older_jobs_button(),
        ),
        rx.cond(jobs.length() == 0, rx.text("No jobs yet.", color_scheme="gray", size="2")),
        _timeline_refresher(),
        role="region",
        aria_labelledby="queue-heading",
        width="100%",
        class_name="queue-panel",
    )
