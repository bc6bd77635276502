"""Run plans that live in the database: Run all stale, Generate with stale ancestors, Autorun.

A plan is a set of `PlanStep` rows, one per node at most (the primary key). A step
waits until no node it uses is still planned, then starts: a conditional update moves
it from `waiting` to `running` and the node's job is queued, in one transaction, so
two tabs (or two workers) never start one step twice. When a job ends, `job_settled`
runs in the transaction that ends it (`JobBook.on_settled`): its step goes, a failure
blocks the steps downstream with the reason, the steps that can start now start, and
with Autorun the stale nodes downstream of a new result are planned. Nothing lives in
memory: after a restart the rows and the jobs' own states carry the plan on.

Jobs a plan queues are handed to the pipeline after commit (`on_started`), the same route a
Generate takes: no loop polls for them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping

from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select

from core.changes import ChangeWriter, Transaction
from core.contract import JobStatus, ProviderError
from core.db import get_or_404
from core.errors import InvalidInput, NotFound
from core.jobs.book import JobBook
from core.logs import get_logger, log_job, log_step
from core.notebook.canvas import lock_nodes
from core.notebook.graph import ancestors, descendants, topological_order
from core.notebook.staleness import BLOCKED, RUNNING, WAITING, StepFacts, Verdict, write_labels
from models.tables import Job, Node, PlanStep, Project

log = get_logger("plan")
UNFINISHED = [JobStatus.QUEUED.value, JobStatus.SUBMITTED.value, JobStatus.RUNNING.value]
#: Why a step downstream of a node did not run.
BLOCKING = ("failed", "was cancelled", "did not run")


def _blocked_by(node_id: int, why: str) -> str:
    return f"Not run: #{node_id} {why}"


class RunPlan:
    def __init__(self, writer: ChangeWriter, jobs: JobBook) -> None:
        self.writer = writer
        self.jobs = jobs
        #: Called after commit with each job a plan queued (`Pipeline.submit_soon`: from any thread).
        self.on_started: Callable[[str], None] | None = None

    # what tabs ask for -----------------------------------------------------
    def run_all_stale(self, project_id: int) -> int:
        """Plan every stale node of the project; returns how many steps are new."""
        with self.writer.transaction() as tx:
            get_or_404(tx.session, Project, project_id)
            nodes = lock_nodes(tx, project_id)
            verdicts = write_labels(tx, project_id, nodes)
            planned = self._plan(tx, nodes, [n for n in nodes if verdicts[n].stale])
            self._start_ready(tx, project_id)
            write_labels(tx, project_id, nodes)
        log_step(log, "plan.run_all_stale", project_id=project_id, planned=planned)
        return planned

    def run_with_ancestors(self, node_id: int) -> bool:
        """Generate on a node with stale (or still planned) ancestors: plan them and it.

        False, and nothing planned, when every ancestor is up to date: the caller runs
        the node at once.
        """
        with self.writer.transaction() as tx:
            project_id = get_or_404(tx.session, Node, node_id).project_id
            nodes = lock_nodes(tx, project_id)
            verdicts = write_labels(tx, project_id, nodes)
            planned = set(tx.session.exec(select(PlanStep.node_id).where(PlanStep.project_id == project_id)))
            upstream = ancestors(_uses(nodes), node_id)
            stale = [a for a in upstream if a in nodes and (verdicts[a].stale or a in planned)]
            if not stale:
                return False
            self._plan(tx, nodes, [*stale, node_id])
            self._start_ready(tx, project_id)
            write_labels(tx, project_id, nodes)
        log_step(log, "plan.generate", project_id=project_id, node_id=node_id, ancestors=len(stale))
        return True

    def set_autorun(self, project_id: int, on: bool) -> None:
        """Switch Autorun; switched on, it catches up at once: the stale nodes below an
        up-to-date node run, as if that node had just completed."""
        with self.writer.transaction() as tx:
            nodes = lock_nodes(tx, project_id)  # the project, then its nodes: every writer's order
            project = get_or_404(tx.session, Project, project_id, lock=True)
            if project.autorun == on:
                return
            project.autorun = on
            tx.changed(project_id)
            if not on:
                return
            verdicts = write_labels(tx, project_id, nodes)
            uses = _uses(nodes)
            below = set().union(*(descendants(uses, n) for n in nodes if not verdicts[n].stale))
            self._plan(tx, nodes, [n for n in nodes if n in below and verdicts[n].stale])
            self._start_ready(tx, project_id)
            write_labels(tx, project_id, nodes)

    # what the jobs' ends do ---------------------------------------------------
    def job_settled(self, tx: Transaction, job: Job, nodes: dict[int, Node]) -> Mapping[int, StepFacts] | None:
        """The plan moves on, in the transaction that ended `job` (`JobBook.on_settled`, never for a
        synthetic job); the staleness labels are left to that transaction's end. `nodes`: the
        project's nodes as that transaction locked them (`lock_nodes`).

        Most jobs end with no plan in their project: one read of its steps says so, nothing else
        is read or written for them, and the labels need no second read: the plan returned is
        empty. None: the plan changed, the labels read it again.
        """
        # Of rows this transaction has not changed: no flush first (it would write the job and
        # its node now, and the node again with its label).
        with tx.session.no_autoflush:
            steps = list(tx.session.exec(select(PlanStep).where(PlanStep.project_id == job.project_id)))
        step = next((s for s in steps if s.job_id == job.id), None)
        completed = job.status == JobStatus.COMPLETED
        planned = 0
        if step is not None:
            tx.session.delete(step)
            tx.session.flush()
        if job.node_id is not None:
            if not completed and step is not None:
                outcome = "was cancelled" if job.status == JobStatus.CANCELLED else "failed"
                self._block_downstream(tx, nodes, job.node_id, _blocked_by(job.node_id, outcome))
            if completed and any(s.status == BLOCKED for s in steps):
                # A node that ran after all (a retry, say) is no longer blocked, and the steps it
                # blocked wait again: the plan goes on where the failure stopped it.
                tx.session.execute(
                    delete(PlanStep).where(col(PlanStep.node_id) == job.node_id, col(PlanStep.status) == BLOCKED)
                )
                if downstream := descendants(_uses(nodes), job.node_id):
                    tx.session.execute(
                        update(PlanStep)
                        .where(
                            col(PlanStep.node_id).in_(downstream),
                            col(PlanStep.status) == BLOCKED,
                            col(PlanStep.reason).in_([_blocked_by(job.node_id, why) for why in BLOCKING]),
                        )
                        .values(status=WAITING, reason="")
                    )
            with tx.session.no_autoflush:
                project = tx.session.get(Project, job.project_id) if completed else None
            if project is not None and project.autorun:
                verdicts = write_labels(tx, job.project_id, nodes)
                below = descendants(_uses(nodes), job.node_id)
                planned = self._plan(tx, nodes, [d for d in below if _runnable(verdicts, d)])
        if not steps and not planned:
            return {}
        self._start_ready(tx, job.project_id)  # the labels are written by the caller, once (`JobBook._advance`)
        return None

    def resume(self) -> None:
        """Start the steps that can start, in every project (at start, and now and then):
        heals a plan whose upstream node was deleted, whatever wrote the rows."""
        with self.writer.transaction() as tx:
            projects = set(tx.session.exec(select(PlanStep.project_id).where(PlanStep.status == WAITING)))
        for project_id in projects:
            with self.writer.transaction() as tx:
                if self._start_ready(tx, project_id):
                    write_labels(tx, project_id)

    # the steps ------------------------------------------------------------
    def _plan(self, tx: Transaction, nodes: dict[int, Node], targets: Iterable[int]) -> int:
        """Add a step per target (a blocked one waits again); a node already planned is left as it is."""
        wanted = [t for t in dict.fromkeys(targets) if t in nodes and all(s in nodes for s in nodes[t].input_nodes)]
        added = 0
        for node_id in wanted:
            node = nodes[node_id]
            unfinished = tx.session.exec(
                select(Job.id).where(Job.node_id == node_id, col(Job.status).in_(UNFINISHED))
            ).first()
            # A node whose job is already on its way is not run again: the step follows that job.
            status, job_id = (RUNNING, unfinished) if unfinished else (WAITING, None)
            tx.session.execute(
                update(PlanStep)
                .where(col(PlanStep.node_id) == node_id, col(PlanStep.status) == BLOCKED)
                .values(status=status, job_id=job_id, reason="")
            )
            insert = pg_insert if tx.session.get_bind().dialect.name == "postgresql" else sqlite_insert
            inserted = tx.session.connection().execute(
                insert(PlanStep)
                .values(node_id=node_id, project_id=node.project_id, status=status, job_id=job_id, reason="")
                .on_conflict_do_nothing(index_elements=["node_id"])
                .returning(col(PlanStep.node_id))
            )
            added += len(inserted.all())
        return added

    def _start_ready(self, tx: Transaction, project_id: int) -> int:
        """Start every waiting step none of whose inputs is still planned; returns how many started."""
        steps = {
            s.node_id: s.status
            for s in tx.session.exec(
                select(PlanStep).where(PlanStep.project_id == project_id).execution_options(populate_existing=True)
            )
        }
        waiting = [n for n, status in steps.items() if status == WAITING]
        if not waiting:
            return 0
        nodes = {n.id: n for n in tx.session.exec(select(Node).where(col(Node.id).in_(waiting))) if n.id is not None}
        active = {n for n, status in steps.items() if status in (WAITING, RUNNING)}
        order = sorted(nodes.values(), key=lambda n: (n.position, n.id))
        started = 0
        for node_id in topological_order(_uses(nodes), [n.id for n in order if n.id is not None]):
            node = nodes[node_id]
            if any(source in active for source in node.input_nodes):
                continue
            taken = (
                tx.session.connection()
                .execute(
                    update(PlanStep)
                    .where(col(PlanStep.node_id) == node_id, col(PlanStep.status) == WAITING)
                    .values(status=RUNNING)
                )
                .rowcount
            )
            if not taken:
                continue  # another transaction started it
            try:
                job, _ = self.jobs.queue_in(tx, node_id)
            except (InvalidInput, NotFound, ProviderError) as exc:
                reason = f"Not run: {exc}"
                tx.session.execute(
                    update(PlanStep).where(col(PlanStep.node_id) == node_id).values(status=BLOCKED, reason=reason)
                )
                self._block_downstream(tx, _nodes(tx, project_id), node_id, _blocked_by(node_id, "did not run"))
                active.discard(node_id)
                continue
            tx.session.execute(update(PlanStep).where(col(PlanStep.node_id) == node_id).values(job_id=job.id))
            if self.on_started is not None:
                tx.after_commit.append(functools.partial(self.on_started, job.id))
            tx.after_commit.append(
                functools.partial(log_job, log, "job.created", job, node_id=node_id, model=job.model, planned=True)
            )
            started += 1
        return started

    def _block_downstream(self, tx: Transaction, nodes: dict[int, Node], node_id: int, reason: str) -> None:
        below = descendants(_uses(nodes), node_id)
        if below:
            tx.session.execute(
                update(PlanStep)
                .where(col(PlanStep.node_id).in_(below), col(PlanStep.status) == WAITING)
                .values(status=BLOCKED, reason=reason)
            )


def _nodes(tx: Transaction, project_id: int) -> dict[int, Node]:
    return {n.id: n for n in tx.session.exec(select(Node).where(Node.project_id == project_id)) if n.id is not None}


def _uses(nodes: dict[int, Node]) -> dict[int, list[int]]:
    return {node_id: list(node.input_nodes) for node_id, node in nodes.items()}


def _runnable(verdicts: dict[int, Verdict], node_id: int) -> bool:
    verdict = verdicts.get(node_id)
    return verdict is not None and verdict.stale
