"""Projects, nodes and what a tab reads: the Reflex-free core of the canvas."""

from __future__ import annotations

from collections import Counter

from sqlmodel import Session, col, func, select
from sqlmodel.sql.expression import SelectOfScalar

from core.changes import ChangeWriter, Transaction, changes_since
from core.contract import JobStatus, NodeKind, ProviderRegistry
from core.db import get_or_404
from core.errors import InvalidInput, NotFound
from core.media.store import MEDIA_PREFIX, MediaStore
from core.notebook.staleness import NEVER_RUN, write_labels
from core.notebook.undo_log import UndoKind, record_delete, record_prompt
from core.people.access import use_media
from models.tables import Job, Node, NodeResult, PlanStep, Project, UndoStep, utcnow
from models.views import Changes, HistoryEntry, ImageInfo, JobPage, JobView, NodeView, ProjectView, Snapshot

#: Earlier results kept on a node card.
HISTORY_LIMIT = 20
#: At most this many `Images` per Generate.
MAX_BATCH = 4
#: The largest `Seed`: what 32-bit models accept.
MAX_SEED = 2**31 - 1


class Canvas:
    """Creates and edits projects and nodes; reads snapshots and change sets."""

    def __init__(
        self,
        writer: ChangeWriter,
        registry: ProviderRegistry,
        media: MediaStore,
        *,
        max_prompt_chars: int,
        max_project_name_chars: int,
        queue_rows: int,
    ) -> None:
        self.writer = writer
        self.registry = registry
        #: Each node row carries its result's size and ThumbHash, read from the store (cached).
        self.media = media
        self.max_prompt_chars = max_prompt_chars
        self.max_project_name_chars = max_project_name_chars
        #: The newest jobs a snapshot holds, and the size of each page of older ones.
        self.queue_rows = queue_rows

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
            return self._view(node, [])

    def update_node(
        self,
        node_id: int,
        *,
        prompt: str | None = None,
        model: str | None = None,
        aspect_ratio: str | None = None,
        batch_size: int | None = None,
        seed: str | None = None,
        by: int = 0,
    ) -> NodeView:
        """Last write wins; every write bumps the node's version. `by`: the user, whose prompt
        edit can be undone (0: no undo step, e.g. an undo itself)."""
        with self.writer.transaction() as tx:
            node = lock_node(tx, node_id)
            if prompt is not None:
                if len(prompt) > self.max_prompt_chars:
                    raise InvalidInput(f"Prompt is limited to {self.max_prompt_chars} characters")
                if by and prompt != node.prompt:
                    record_prompt(tx, node, by)
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
            if batch_size is not None:
                if not 1 <= batch_size <= MAX_BATCH:
                    raise InvalidInput(f"Images per Generate: 1 to {MAX_BATCH}, not {batch_size}")
                node.batch_size = batch_size
            if seed is not None:
                node.seed = self._checked_seed(node.model, seed.strip())
            self.touch_node(tx, node)
            return self._view(node, self._history(tx.session, node_id))

    def _checked_seed(self, model: str, seed: str) -> str:
        if not seed:
            return ""  # a random one per job
        if not self.registry.model(model).takes_seed:
            raise InvalidInput(f"{model} takes no seed")
        if not seed.isdigit() or int(seed) > MAX_SEED:
            raise InvalidInput(f"A seed is a whole number from 0 to {MAX_SEED}, or empty for a random one")
        return str(int(seed))

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
            return self._view(node, self._history(tx.session, node_id))

    def delete_node(self, node_id: int, by: int = 0) -> int:
        """Deletes the node and its history; its jobs stay in the queue, detached.

        `by`: the user, who can undo it; returns the undo step's id (0 when none was recorded).
        """
        with self.writer.transaction() as tx:
            node = lock_node(tx, node_id)
            results = list(tx.session.exec(select(NodeResult).where(NodeResult.node_id == node_id)))
            jobs = list(tx.session.exec(select(Job).where(Job.node_id == node_id)))
            undo_step = record_delete(tx, node, by, results, jobs) if by else 0
            for result in results:
                tx.session.delete(result)
            for job in jobs:
                job.node_id = None
                job.version += 1
            if (step := tx.session.get(PlanStep, node_id)) is not None:
                tx.session.delete(step)
            tx.session.delete(node)
            tx.changed(node.project_id)  # one flush: the triggers write an event per changed row
            write_labels(tx, node.project_id)  # nodes that used it now show a broken input
            return undo_step

    @staticmethod
    def touch_node(tx: Transaction, node: Node) -> None:
        """Record a node's change, and what it means for every node's staleness, in one flush."""
        Canvas.bump_node(tx, node)
        write_labels(tx, node.project_id)
        tx.changed(node.project_id)

    @staticmethod
    def bump_node(tx: Transaction, node: Node) -> None:
        """A node's new version, leaving the staleness labels and `tx.changed` to the caller: one
        that changes more in the same transaction (a job's end moves the run plan too) judges and
        reads the sequence once, at its end."""
        assert node.id is not None
        node.version += 1
        node.updated_at = utcnow()
        tx.session.add(node)

    # reads --------------------------------------------------------------
    def snapshot(self, project_id: int) -> Snapshot:
        with self.writer.reading() as s:
            project = get_or_404(s, Project, project_id)
            nodes = s.exec(select(Node).where(Node.project_id == project_id).order_by(col(Node.position), col(Node.id)))
            page = self._job_page(s, _queue(project_id))
            return Snapshot(
                project=ProjectView.of(project),
                seq=project.last_seq,
                nodes=[self._view(n, self._history(s, n.id)) for n in nodes],
                jobs=page.jobs,
                more_jobs=page.more,
            )

    def older_jobs(self, project_id: int, before_job_id: str) -> JobPage:
        """The `queue_rows` jobs after `before_job_id` in the queue's order (newest first).

        Keyed on the job itself, not on an offset: jobs made meanwhile do not shift the page.
        """
        with self.writer.reading() as s:
            before = s.get(Job, before_job_id)
            if before is None or before.project_id != project_id:
                raise NotFound(f"Job {before_job_id} not found")
            older = (col(Job.created_at) < before.created_at) | (
                (col(Job.created_at) == before.created_at) & (col(Job.id) > before.id)
            )
            return self._job_page(s, _queue(project_id).where(older))

    def _job_page(self, s: Session, query: SelectOfScalar[Job]) -> JobPage:
        """The first `queue_rows` jobs of `query`, and whether more follow (one row more is read)."""
        jobs = list(s.exec(query.limit(self.queue_rows + 1)))
        return JobPage(jobs=[self._job_view(j) for j in jobs[: self.queue_rows]], more=len(jobs) > self.queue_rows)

    def changes(self, project_id: int, after_seq: int) -> Changes:
        """The current state of every row changed after `after_seq`.

        Node rows come without their history: a tab holding a node puts a new result on
        top of the history it has, so a completion costs no history read and no list sent.
        Two exceptions come with their history: a node an undo restored (no tab holds it), and
        a node with more than one new result in the span (its row names only the newest, so a
        tab extending its own would miss the others: a batch's completions in one read).
        """
        with self.writer.reading() as s:
            events = changes_since(s, project_id, after_seq)
            if [e.seq for e in events] != list(range(after_seq + 1, after_seq + 1 + len(events))):
                return Changes(seq=after_seq, nodes=[], jobs=[], deleted_nodes=[], project=None, gap=True)
            seq = events[-1].seq if events else after_seq
            latest = {(e.entity, e.entity_id): e.op for e in events}
            restored = (
                set(
                    s.exec(
                        select(UndoStep.node_id).where(
                            UndoStep.project_id == project_id,
                            UndoStep.kind == UndoKind.DELETE_NODE.value,
                            col(UndoStep.undone_seq) > after_seq,
                        )
                    )
                )
                if any(entity == "node" for entity, _ in latest)  # a job's change needs no undo's word
                else set()
            )
            job_rows = [
                job
                for (entity, entity_id) in latest
                if entity == "job" and (job := s.get(Job, entity_id)) is not None and not job.synthetic
            ]
            # Nodes with more than one result in the span (each result's job changed in it).
            results = Counter(j.node_id for j in job_rows if j.status == JobStatus.COMPLETED and j.image_path)
            nodes, deleted = [], []
            project = None
            for (entity, entity_id), op in latest.items():
                if entity == "node":
                    node = s.get(Node, int(entity_id))
                    if op == "delete" or node is None:
                        deleted.append(int(entity_id))
                    else:
                        whole = node.id in restored or results[node.id] > 1
                        history = self._history(s, node.id) if whole else []
                        nodes.append(self._view(node, history))
                elif entity == "project" and (row := s.get(Project, project_id)) is not None:
                    project = ProjectView.of(row)
            jobs = [self._job_view(job) for job in job_rows]
            return Changes(seq=seq, nodes=nodes, jobs=jobs, deleted_nodes=deleted, project=project)

    def _job_view(self, job: Job) -> JobView:
        return JobView.of(job, self._info(job.image_path))

    def _view(self, node: Node, history: list[HistoryEntry]) -> NodeView:
        return NodeView.of(node, history, self._info(node.image_path), self._info(node.latest_result))

    def _info(self, url: str | None) -> ImageInfo | None:
        return self.media.info(url) if url else None

    def _history(self, session: Session, node_id: int | None) -> list[HistoryEntry]:
        rows = session.exec(
            select(NodeResult.image_path)
            .where(NodeResult.node_id == node_id)
            .order_by(col(NodeResult.id).desc())
            .limit(HISTORY_LIMIT)
        )
        return [HistoryEntry(url, info.thumbhash if (info := self._info(url)) else "") for url in rows]


def _queue(project_id: int) -> SelectOfScalar[Job]:
    """The project's queue in its order: newest first, ties by id (what a tab shows)."""
    return (
        select(Job)
        .where(Job.project_id == project_id, col(Job.synthetic).is_(False))
        .order_by(col(Job.created_at).desc(), col(Job.id))
    )


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
