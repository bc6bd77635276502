"""Projects, nodes and what a tab reads: the Reflex-free core of the canvas."""

from __future__ import annotations

from sqlmodel import Session, col, func, select

from core.access import use_media
from core.changes import ChangeWriter, Transaction, changes_since
from core.contract import NodeKind, ProviderRegistry
from core.db import get_or_404
from core.errors import InvalidInput, NotFound
from core.media import MEDIA_PREFIX
from core.staleness import NEVER_RUN, write_labels
from models.tables import Job, Node, NodeResult, PlanStep, Project, utcnow
from models.views import Changes, JobView, NodeView, ProjectView, Snapshot

QUEUE_LIMIT = 200
#: Earlier results kept on a node card.
HISTORY_LIMIT = 20


class Canvas:
    """Creates and edits projects and nodes; reads snapshots and change sets."""

    def __init__(
        self, writer: ChangeWriter, registry: ProviderRegistry, *, max_prompt_chars: int, max_project_name_chars: int
    ) -> None:
        self.writer = writer
        self.registry = registry
        self.max_prompt_chars = max_prompt_chars
        self.max_project_name_chars = max_project_name_chars

    def _clean_name(self, name: str) -> str:
        name = " ".join(name.split())
        if not name:
            raise InvalidInput("Project name cannot be empty")
        if len(name) > self.max_project_name_chars:
            raise InvalidInput(f"Project name is limited to {self.max_project_name_chars} characters")
        return name

    # projects -----------------------------------------------------------
    def list_projects(self, owner_id: int) -> list[ProjectView]:
        with self.writer.transaction() as tx:
            rows = tx.session.exec(select(Project).where(Project.owner_id == owner_id).order_by(col(Project.id)))
            return [ProjectView.of(p) for p in rows]

    def ensure_default_project(self, owner_id: int) -> ProjectView:
        """The owner's first project, made on their first visit."""
        projects = self.list_projects(owner_id)
        return projects[0] if projects else self.create_project(owner_id, "My first project")

    def create_project(self, owner_id: int, name: str) -> ProjectView:
        with self.writer.transaction() as tx:
            project = Project(owner_id=owner_id, name=self._clean_name(name))
            tx.session.add(project)
            tx.session.flush()
            assert project.id is not None
            tx.changed(project.id)
            return ProjectView.of(project)

    def rename_project(self, project_id: int, name: str) -> ProjectView:
        with self.writer.transaction() as tx:
            project = get_or_404(tx.session, Project, project_id, lock=True)
            project.name = self._clean_name(name)
            tx.changed(project_id)
            return ProjectView.of(project)

    # nodes --------------------------------------------------------------
    def add_node(self, project_id: int, kind: NodeKind) -> NodeView:
        model = next(m for m in self.registry.all_models() if m.kind == kind and not m.disabled_reason)
        with self.writer.transaction() as tx:
            get_or_404(tx.session, Project, project_id)
            last = tx.session.exec(select(func.max(Node.position)).where(Node.project_id == project_id)).one()
            node = Node(project_id=project_id, kind=kind, model=model.id, position=(last or 0) + 1, freshness=NEVER_RUN)
            tx.session.add(node)
            tx.session.flush()
            assert node.id is not None
            tx.changed(project_id)
            return NodeView.of(node, [])

    def update_node(
        self,
        node_id: int,
        *,
        prompt: str | None = None,
        model: str | None = None,
        aspect_ratio: str | None = None,
    ) -> NodeView:
        """Last write wins; every write bumps the node's version."""
        with self.writer.transaction() as tx:
            node = lock_node(tx, node_id)
            if prompt is not None:
                if len(prompt) > self.max_prompt_chars:
                    raise InvalidInput(f"Prompt is limited to {self.max_prompt_chars} characters")
                node.prompt = prompt
            if model is not None:
                info = self.registry.model(model)
                if info.kind != node.kind:
                    raise InvalidInput(f"Model {model} cannot run a {node.kind.value} node")
                node.model = model
                if node.aspect_ratio not in info.aspect_ratios:
                    node.aspect_ratio = info.fallback_aspect_ratio  # the new model cannot draw the old ratio
            if aspect_ratio is not None:
                offered = self.registry.model(node.model).aspect_ratios
                if aspect_ratio not in offered:
                    raise InvalidInput(f"{node.model} draws the aspect ratios {', '.join(offered)}, not {aspect_ratio}")
                node.aspect_ratio = aspect_ratio
            self.touch_node(tx, node)
            return NodeView.of(node, self._history(tx.session, node_id))

    def change_inputs(self, node_id: int, *, add: list[str] | None = None, remove: list[str] | None = None) -> NodeView:
        """Add or remove an edit node's input images in one read-modify-write."""
        with self.writer.transaction() as tx:
            node = lock_node(tx, node_id)
            if node.kind != NodeKind.IMAGE_EDIT:
                raise InvalidInput("Only image edit nodes take input images")
            if any(not url.startswith(MEDIA_PREFIX) for url in add or []):
                raise InvalidInput("Input images must be results or uploads stored by the app")
            kept = [url for url in node.input_images if url not in (remove or [])]
            images = list(dict.fromkeys(kept + (add or [])))
            limit = self.registry.model(node.model).max_input_images
            if len(images) + len(node.input_nodes) > limit:  # inputs that follow nodes count too
                raise InvalidInput(f"{node.model} takes at most {limit} input images")
            node.input_images = images
            use_media(tx.session, node.project_id, add or [])  # its members may now see these
            self.touch_node(tx, node)
            return NodeView.of(node, self._history(tx.session, node_id))

    def delete_node(self, node_id: int) -> None:
        """Deletes the node and its history; its jobs stay in the queue, detached."""
        with self.writer.transaction() as tx:
            node = lock_node(tx, node_id)
            for result in tx.session.exec(select(NodeResult).where(NodeResult.node_id == node_id)):
                tx.session.delete(result)
            for job in tx.session.exec(select(Job).where(Job.node_id == node_id)):
                job.node_id = None
                job.version += 1
            if (step := tx.session.get(PlanStep, node_id)) is not None:
                tx.session.delete(step)
            tx.session.delete(node)
            tx.changed(node.project_id)  # one flush: the triggers write an event per changed row
            write_labels(tx, node.project_id)  # nodes that used it now show a broken input

    @staticmethod
    def touch_node(tx: Transaction, node: Node) -> None:
        """Record a node's change, and what it means for every node's staleness, in one flush."""
        assert node.id is not None
        node.version += 1
        node.updated_at = utcnow()
        tx.session.add(node)
        write_labels(tx, node.project_id)
        tx.changed(node.project_id)

    # reads --------------------------------------------------------------
    def snapshot(self, project_id: int) -> Snapshot:
        with self.writer.reading() as s:
            project = get_or_404(s, Project, project_id)
            nodes = s.exec(select(Node).where(Node.project_id == project_id).order_by(col(Node.position), col(Node.id)))
            jobs = s.exec(
                select(Job)
                .where(Job.project_id == project_id, col(Job.synthetic).is_(False))
                .order_by(col(Job.created_at).desc(), col(Job.id))
                .limit(QUEUE_LIMIT)
            )
            return Snapshot(
                project=ProjectView.of(project),
                seq=project.last_seq,
                nodes=[NodeView.of(n, self._history(s, n.id)) for n in nodes],
                jobs=[JobView.of(j) for j in jobs],
            )

    def changes(self, project_id: int, after_seq: int) -> Changes:
        """The current state of every row changed after `after_seq`.

        Node rows come without their history: a tab holding a node puts a new result on
        top of the history it has, so a completion costs no history read and no list sent.
        """
        with self.writer.reading() as s:
            events = changes_since(s, project_id, after_seq)
            if [e.seq for e in events] != list(range(after_seq + 1, after_seq + 1 + len(events))):
                return Changes(seq=after_seq, nodes=[], jobs=[], deleted_nodes=[], project=None, gap=True)
            seq = events[-1].seq if events else after_seq
            latest = {(e.entity, e.entity_id): e.op for e in events}
            nodes, jobs, deleted = [], [], []
            project = None
            for (entity, entity_id), op in latest.items():
                if entity == "node":
                    node = s.get(Node, int(entity_id))
                    if op == "delete" or node is None:
                        deleted.append(int(entity_id))
                    else:
                        nodes.append(NodeView.of(node, []))
                elif entity == "job" and (job := s.get(Job, entity_id)) is not None and not job.synthetic:
                    jobs.append(JobView.of(job))
                elif entity == "project" and (row := s.get(Project, project_id)) is not None:
                    project = ProjectView.of(row)
            return Changes(seq=seq, nodes=nodes, jobs=jobs, deleted_nodes=deleted, project=project)

    @staticmethod
    def _history(session: Session, node_id: int | None) -> list[str]:
        rows = session.exec(
            select(NodeResult.image_path)
            .where(NodeResult.node_id == node_id)
            .order_by(col(NodeResult.id).desc())
            .limit(HISTORY_LIMIT)
        )
        return list(rows)


def lock_nodes(tx: Transaction, project_id: int) -> dict[int, Node]:
    """The project's nodes, locked in id order after the project (`Transaction.lock_project`).

    Taken by every transaction that settles a job, runs a plan or changes a node: a change
    to one node rewrites every node's staleness, and a plan reads them all. So a plan reads
    what is committed, and no job can settle under it.
    """
    tx.lock_project(project_id)
    rows = tx.session.exec(select(Node).where(Node.project_id == project_id).order_by(col(Node.id)).with_for_update())
    return {n.id: n for n in rows if n.id is not None}


def lock_node(tx: Transaction, node_id: int) -> Node:
    """A node to change, locked with its project's other nodes, in `lock_nodes`' order: a
    change to one node rewrites every node's staleness, so it takes them all anyway."""
    project_id = get_or_404(tx.session, Node, node_id).project_id
    node = lock_nodes(tx, project_id).get(node_id)
    if node is None:
        raise NotFound(f"Node {node_id} not found")  # deleted meanwhile
    return node
