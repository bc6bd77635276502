"""The notebook's edits: inputs that refer to nodes, node order, the current result.

An edit node's input is a fixed image (an upload, `Node.input_images`) or another node
(`Node.input_nodes`), whose *current* result a job takes when it starts: a better image
upstream makes this node stale (core/notebook/staleness.py) instead of being silently ignored.
A reference that would close a loop is refused. Every edit rewrites the project's
staleness labels in its own transaction (`Canvas.touch_node`).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlmodel import Session, col, select

from core.changes import ChangeWriter
from core.contract import NodeKind, ProviderError, ProviderRegistry
from core.errors import InvalidInput, NotFound
from core.logs import get_logger
from core.notebook.canvas import Canvas, lock_node
from core.notebook.graph import would_cycle
from core.notebook.undo_log import UndoKind, record
from models.tables import Job, Node, NodeResult

log = get_logger("notebook")


def resolve_inputs(session: Session, node: Node) -> tuple[list[str], dict[str, str]]:
    """The images a job of `node` works on now (fixed ones first, then each input node's
    current result) and, per input node, the job of the result it takes.

    Raises `InvalidInput` for an input node that is gone or has no result yet.
    """
    images, used = list(node.input_images), {}
    for source_id in node.input_nodes:
        source = session.get(Node, source_id)
        if source is None or source.project_id != node.project_id:
            raise InvalidInput(f"Input #{source_id} was deleted: remove it or pick another node")
        if not source.image_path or not source.result_job_id:
            raise InvalidInput(f"Waiting for #{source_id}: it has no result yet")
        images.append(source.image_path)
        used[str(source_id)] = source.result_job_id
    return images, used


def _settings(node: Node) -> dict[str, str]:
    return {"prompt": node.prompt, "model": node.model, "aspect_ratio": node.aspect_ratio}


def _settings_of(job: Job | None, node: Node, registry: ProviderRegistry) -> dict[str, str]:
    """The prompt and settings a result was made with, as far as the node can take them now
    (a model gone from the registry, or of another kind, leaves the node's own)."""
    if job is None:
        return _settings(node)
    try:
        usable = registry.model(job.model).kind == node.kind
    except ProviderError:
        usable = False
    return {
        "prompt": job.prompt,
        "model": job.model if usable else node.model,
        "aspect_ratio": job.aspect_ratio if usable else node.aspect_ratio,
    }


class Notebook:
    def __init__(self, writer: ChangeWriter, registry: ProviderRegistry) -> None:
        self.writer = writer
        self.registry = registry

    def add_input_node(self, node_id: int, source_id: int) -> None:
        """`node` takes `source`'s current result as an input, now and after every new one."""
        with self.writer.transaction() as tx:
            node = lock_node(tx, node_id)
            if node.kind != NodeKind.IMAGE_EDIT:
                raise InvalidInput("Only image edit nodes take inputs")
            source = tx.session.get(Node, source_id)
            if source is None or source.project_id != node.project_id:
                raise NotFound(f"Node #{source_id} not found")
            if source_id in node.input_nodes:
                return
            project_nodes = tx.session.exec(select(Node).where(Node.project_id == node.project_id))
            uses = {n.id: list(n.input_nodes) for n in project_nodes if n.id is not None}
            if would_cycle(uses, node_id, source_id):
                raise InvalidInput(
                    f"#{node_id} cannot use #{source_id}: #{source_id} already depends on #{node_id} (a cycle)"
                    if source_id != node_id
                    else f"#{node_id} cannot use its own result"
                )
            limit = self.registry.model(node.model).max_input_images
            if len(node.input_images) + len(node.input_nodes) + 1 > limit:
                raise InvalidInput(f"{node.model} takes at most {limit} input images")
            node.input_nodes = [*node.input_nodes, source_id]
            Canvas.touch_node(tx, node)

    def remove_input_node(self, node_id: int, source_id: int) -> None:
        with self.writer.transaction() as tx:
            node = lock_node(tx, node_id)
            if source_id in node.input_nodes:
                node.input_nodes = [s for s in node.input_nodes if s != source_id]
                Canvas.touch_node(tx, node)

    def move(self, node_id: int, step: int, by: int = 0) -> None:
        """One place up (`step` -1) or down (+1); at an end, nothing moves. `by`: who may undo it."""
        if step not in (-1, 1):
            raise InvalidInput("A node moves one place up or down")
        self._reorder(node_id, lambda ids: ids.index(node_id) + step, by)

    def move_to(self, node_id: int, target_id: int, by: int = 0) -> None:
        """Drag and drop: the node takes the target's place; the nodes between shift by one."""

        def target_place(ids: list[int]) -> int:
            if target_id not in ids:
                raise NotFound(f"Node #{target_id} not found")
            return ids.index(target_id)

        self._reorder(node_id, target_place, by)

    def _reorder(self, node_id: int, new_index: Callable[[list[int]], int], by: int) -> None:
        with self.writer.transaction() as tx:
            node = lock_node(tx, node_id)
            ordered = list(
                tx.session.exec(
                    select(Node)
                    .where(Node.project_id == node.project_id)
                    .order_by(col(Node.position), col(Node.id))
                    .with_for_update()
                )
            )
            to = new_index([n.id for n in ordered if n.id is not None])
            if not 0 <= to < len(ordered) or ordered[to] is node:
                return
            if by:
                record(tx, node, by, UndoKind.MOVE, {"positions": {str(n.id): n.position for n in ordered}})
            ordered.remove(node)
            ordered.insert(to, node)
            # Renumber the project, so equal positions from before (or from psql) cannot stall a move.
            for position, row in enumerate(ordered, start=1):
                if row.position != position:
                    row.position = position
                    Canvas.touch_node(tx, row)

    def use_result(self, node_id: int, image_url: str, by: int = 0) -> None:
        """Make one of the node's earlier results its current one; its dependants become stale."""
        with self.writer.transaction() as tx:
            node = lock_node(tx, node_id)
            result = tx.session.exec(
                select(NodeResult)
                .where(NodeResult.node_id == node_id, NodeResult.image_path == image_url)
                .order_by(col(NodeResult.id).desc())
            ).first()
            if result is None:
                raise InvalidInput("That image is not a result of this node")
            made_by = tx.session.get(Job, result.job_id)
            settings = _settings_of(made_by, node, self.registry)
            if node.result_job_id == result.job_id and node.image_path == image_url and settings == _settings(node):
                return
            if by:
                before = {"image_path": node.image_path, "result_job_id": node.result_job_id, "error": node.error}
                record(tx, node, by, UndoKind.USE_RESULT, before | _settings(node))
            node.image_path, node.result_job_id, node.error = image_url, result.job_id, None
            # The prompt and settings that made it come back too: the node is not stale for them.
            node.prompt, node.model, node.aspect_ratio = settings["prompt"], settings["model"], settings["aspect_ratio"]
            Canvas.touch_node(tx, node)
