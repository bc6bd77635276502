"""Optimistic queue rows: held in the browser, shown before the server answers.

Generate appends `{client_id, node_id, model}` here in the same click handler
that sends the event, so the row renders without a round trip. The server's job
row carries the same `client_request_id`; once it arrives the optimistic row hides.
"""

from __future__ import annotations

import reflex as rx
from reflex.experimental.client_state import ClientStateVar

pending_jobs = ClientStateVar.create("pendingJobs", default=[])

#: A fresh id per click, stored where the server event's argument reads it back.
_NEW_REQUEST_ID: rx.Var[str] = rx.Var(
    "(window.__canvasRequestId = Date.now().toString(36) + Math.random().toString(36).slice(2))"
)
LAST_REQUEST_ID: rx.Var[str] = rx.Var("window.__canvasRequestId")


def add_pending(node_id: rx.Var, model: rx.Var) -> rx.Var:
    """The click-time update that appends one optimistic row."""
    row = rx.Var.create({"client_id": _NEW_REQUEST_ID, "node_id": node_id, "model": model})
    return pending_jobs.set_value(pending_jobs.value.to(list) + rx.Var.create([row]).to(list))
