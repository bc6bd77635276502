"""Recording undoable edits, in the edit's own transaction (undoing them: core/notebook/undo.py).

What can be undone: deleting a node (with its history), a prompt, the order of the nodes and
`Use this result`. Each records what it changed as it was before, for the user who did it.
Typing in a prompt is one step, not one per keystroke batch: a write within `PROMPT_STEP_S`
of the same user's last step, when that step was a prompt of the same node, extends it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlmodel import col, select

from core.changes import Transaction
from models.tables import Job, Node, NodeResult, UndoStep, utcnow

#: Prompt writes closer together than this, by one user in one node, are one undo step.
PROMPT_STEP_S = 10.0


class UndoKind(StrEnum):
    DELETE_NODE = "delete_node"
    PROMPT = "prompt"
    MOVE = "move"
    USE_RESULT = "use_result"


def record(tx: Transaction, node: Node, user_id: int, kind: UndoKind, before: dict[str, Any]) -> int:
    """One step; its id (a delete's toast undoes that step, whatever came after)."""
    assert node.id is not None
    step = UndoStep(project_id=node.project_id, user_id=user_id, kind=kind.value, node_id=node.id, before=before)
    tx.session.add(step)
    tx.session.flush()
    assert step.id is not None
    return step.id


def record_prompt(tx: Transaction, node: Node, user_id: int) -> None:
    """Before a prompt write: the text as it was, unless this write continues the user's typing."""
    last = tx.session.exec(
        select(UndoStep)
        .where(UndoStep.project_id == node.project_id, UndoStep.user_id == user_id)
        .order_by(col(UndoStep.id).desc())
    ).first()
    continuing = (
        last is not None
        and last.undone_seq is None
        and last.kind == UndoKind.PROMPT
        and last.node_id == node.id
        and utcnow() - _aware(last.created_at) < timedelta(seconds=PROMPT_STEP_S)
    )
    if continuing:
        assert last is not None
        last.created_at = utcnow()  # the typing goes on: the step's window moves with it
        tx.session.add(last)
    else:
        record(tx, node, user_id, UndoKind.PROMPT, {"prompt": node.prompt})


def record_delete(tx: Transaction, node: Node, user_id: int, results: list[NodeResult], jobs: list[Job]) -> int:
    """Before a node is deleted: its row, its history and the jobs that pointed at it."""
    return record(
        tx,
        node,
        user_id,
        UndoKind.DELETE_NODE,
        {
            "node": node.model_dump(mode="json"),
            "results": [r.model_dump(mode="json") for r in results],
            "jobs": [j.id for j in jobs],
        },
    )


def _aware(moment: datetime) -> datetime:
    """SQLite hands datetimes back without their zone; they were written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
