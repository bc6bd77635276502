"""`waiting for KIE.ai, next try in 12 s`: a queued job waiting for its next submit try.

The server sends the row once, with the absolute time of the next try (`JobView.retry_at`);
each browser counts down to it itself, so the text moves every second without a message
per second per tab, and every tab shows the same number whenever its row arrived.
"""

from __future__ import annotations

import reflex as rx

#: react-moment renderer: the whole seconds left until the row's `retry_at`, then "now".
_COUNTDOWN = (
    "(({datetime}) => { const left = Math.ceil((datetime.valueOf() - Date.now()) / 1000);"
    " return left > 0 ? `next try in ${left} s` : 'trying again now'; })"
)


def waiting_notice(waiting_reason: rx.Var, retry_at: rx.Var, **props: object) -> rx.Component:
    """Nothing unless the job waits for a retry (`retry_at` set)."""
    return rx.cond(
        retry_at,
        rx.text(
            waiting_reason,
            ", ",
            rx.moment(date=retry_at, interval=1000, renderers=[rx.Var(_COUNTDOWN)], element="span"),
            size="1",
            color="var(--amber-11)",  # the freshness line's colour: AA contrast on the card and the table
            **props,
        ),
    )
