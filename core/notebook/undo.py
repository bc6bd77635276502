"""Undo: take back a recorded edit (core/notebook/undo_log.py) in one transaction, for everyone.

A user's Undo takes back their own last edit not undone yet in the project (or, from a
delete's toast, that delete). What it puts back is written like any edit: the nodes'
triggers write the change events, so every tab of the project sees the undo as one change,
and staleness is judged again. An edit whose subject is gone since (a prompt of a node
someone deleted) is skipped with a clear word, and the step stays for a later undo of the
delete. A restored node comes back with its id, its history and its jobs; nodes that used it
see their input again.
"""

from __future__ import annotations

from sqlmodel import col, select

from core.changes import ChangeWriter, Transaction
from core.errors import InvalidInput, NotFound
from core.notebook.canvas import Canvas, lock_nodes
from core.notebook.undo_log import UndoKind
from models.tables import Job, Node, NodeResult, UndoStep

#: What the toast says once undone, per kind.
UNDONE = {
    UndoKind.DELETE_NODE: "Restored #{node}",
    UndoKind.PROMPT: "Prompt of #{node} restored",
    UndoKind.MOVE: "Order restored",
    UndoKind.USE_RESULT: "Result of #{node} restored",
}


class UndoBook:
    def __init__(self, writer: ChangeWriter) -> None:
        self.writer = writer

    def undo(self, project_id: int, user_id: int, step_id: int = 0) -> str:
        """Undo the user's step `step_id` (0: their last one still done); says what it did."""
        with self.writer.transaction() as tx:
            nodes = lock_nodes(tx, project_id)
            query = select(UndoStep).where(
                UndoStep.project_id == project_id, UndoStep.user_id == user_id, col(UndoStep.undone_seq).is_(None)
            )
            if step_id:
                query = query.where(UndoStep.id == step_id)
            step = tx.session.exec(query.order_by(col(UndoStep.id).desc())).first()
            if step is None:
                raise InvalidInput("Already undone" if step_id else "Nothing to undo")
            kind = UndoKind(step.kind)
            if kind is UndoKind.DELETE_NODE:
                self._restore_node(tx, step, nodes)
            else:
                node = nodes.get(step.node_id)
                if node is None:
                    raise NotFound(f"#{step.node_id} was deleted: undo that first")
                self._put_back(tx, kind, step, node, nodes)
            step.undone_seq = tx.changed(project_id)
            tx.session.add(step)
            return UNDONE[kind].format(node=step.node_id)

    @staticmethod
    def _put_back(tx: Transaction, kind: UndoKind, step: UndoStep, node: Node, nodes: dict[int, Node]) -> None:
        before = step.before
        if kind is UndoKind.PROMPT:
            node.prompt = before["prompt"]
        elif kind is UndoKind.USE_RESULT:
            node.image_path, node.result_job_id, node.error = (
                before["image_path"],
                before["result_job_id"],
                before["error"],
            )
            node.prompt, node.model, node.aspect_ratio = before["prompt"], before["model"], before["aspect_ratio"]
        elif kind is UndoKind.MOVE:
            for raw_id, position in before["positions"].items():
                moved = nodes.get(int(raw_id))
                if moved is not None and moved.position != position:
                    moved.position = position
                    Canvas.touch_node(tx, moved)
            return
        Canvas.touch_node(tx, node)

    @staticmethod
    def _restore_node(tx: Transaction, step: UndoStep, nodes: dict[int, Node]) -> None:
        if step.node_id in nodes:
            raise InvalidInput(f"#{step.node_id} is there already")
        node = Node.model_validate(step.before["node"])
        tx.session.add(node)
        tx.session.flush()  # the node first: its history points at it
        for raw in step.before["results"]:
            tx.session.add(NodeResult.model_validate(raw))
        job_ids = step.before["jobs"]
        if job_ids:
            for job in tx.session.exec(select(Job).where(col(Job.id).in_(job_ids), col(Job.node_id).is_(None))):
                job.node_id = node.id
                job.version += 1
                tx.session.add(job)
        Canvas.touch_node(tx, node)
