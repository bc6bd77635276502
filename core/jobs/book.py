"""The job lifecycle's one writer: every change is one transaction with its change events.

The rule a change follows is decided on plain values in `core/jobs/transitions.py`; this
module reads the row, asks it, and writes the answer (row, node, timeline, change event).

Rules that keep every tab truthful:
- a job's status only moves forward (`JobStatus.rank`); terminal states are final,
  so a late or duplicated update is dropped instead of moving a job backwards;
- every accepted change bumps `version`;
- completion writes the job, the node and the node's history in one transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, or_, update
from sqlmodel import col, select

from core.changes import ChangeWriter, Transaction
from core.contract import JobStatus, NodeKind, ProviderRegistry, TaskRef
from core.db import SessionFactory, get_or_404, insert_or_ignore
from core.errors import InvalidInput, NotFound
from core.jobs.transitions import JobEvent, JobFacts, decide
from core.logs import get_logger, log_job
from core.notebook.canvas import MAX_SEED, Canvas, lock_nodes
from core.notebook.edits import resolve_inputs
from core.notebook.staleness import StepFacts, write_labels
from core.people.access import use_media
from models.tables import FeedChange, Job, JobStep, Node, NodeResult, Project, WebhookDelivery, utcnow
from models.views import JobView, StepView, TimelineView

log = get_logger("jobs")


@dataclass(frozen=True)
class Receipt:
    """A verified provider callback, written in the transaction of the change it brings.

    `fingerprint` (of a signed delivery) is remembered with it, so the same delivery
    again is a replay; empty when the provider names no delivery.
    """

    detail: str
    at: datetime
    fingerprint: str = ""

    def unapplied(self) -> Receipt:
        """The receipt of a callback that changed nothing: not remembered, the provider may send it again."""
        return replace(self, fingerprint="")


class JobBook:
    def __init__(self, writer: ChangeWriter, registry: ProviderRegistry, stall_after_s: float = 120.0) -> None:
        self.writer = writer
        self.registry = registry
        self.stall_after_s = stall_after_s
        #: What follows a job's end in its own transaction: the run plan moves on (core/jobs/plan.py);
        #: it returns the plan for the labels when it read it unchanged (None: read it again).
        self.on_settled: Callable[[Transaction, Job, dict[int, Node]], Mapping[int, StepFacts] | None] | None = None

    def create(
        self,
        node_id: int,
        client_request_id: str | None = None,
        retry_of: str | None = None,
        clicked_at: datetime | None = None,
    ) -> JobView:
        """Queue a job from the node's current settings; idempotent per client request.

        `clicked_at` is when the user pressed Generate (the browser's clock): the
        timeline's first step.
        """
        with self.writer.transaction() as tx:
            job, seq = self.queue_in(tx, node_id, client_request_id, retry_of, clicked_at)
        if not seq:
            return JobView.of(job)  # the same click again
        log_job(log, "job.created", job, node_id=node_id, model=job.model, seq=seq, client_request_id=client_request_id)
        return JobView.of(job)

    def create_batch(
        self, node_id: int, client_request_id: str | None = None, clicked_at: datetime | None = None
    ) -> list[JobView]:
        """One Generate: the node's `Images` jobs in one transaction, the first first.

        The first job carries the click's request id (the tab's optimistic row is its); the
        others `<id>-<n>` and `batch_of` the first. The same click again returns the same batch.
        """
        with self.writer.transaction() as tx:
            # Held while `queue_in` runs, which reads it again from memory: the session keeps a
            # row only while something refers to it. (None: `queue_in` says what is missing.)
            node = tx.session.get(Node, node_id)
            first, seq = self.queue_in(tx, node_id, client_request_id, None, clicked_at)
            if not seq:
                batch = tx.session.exec(select(Job).where(Job.batch_of == first.id).order_by(col(Job.created_at)))
                return [JobView.of(first), *(JobView.of(j) for j in batch)]
            jobs = [first]
            for n in range(1, node.batch_size if node is not None else 1):
                request = f"{client_request_id}-{n}" if client_request_id else None
                job, _ = self.queue_in(tx, node_id, request, None, clicked_at, batch_of=first.id)
                jobs.append(job)
        for job in jobs:
            log_job(log, "job.created", job, node_id=node_id, model=job.model, seq=seq, batch_of=job.batch_of)
        return [JobView.of(j) for j in jobs]

    def queue_in(
        self,
        tx: Transaction,
        node_id: int,
        client_request_id: str | None = None,
        retry_of: str | None = None,
        clicked_at: datetime | None = None,
        batch_of: str | None = None,
    ) -> tuple[Job, int]:
        """`create` inside the caller's transaction (a run plan starts nodes in its own);
        returns the job and its change's sequence number (0 for a repeated request)."""
        if (existing := _requested(tx, client_request_id)) is not None:
            return existing, 0
        node = get_or_404(tx.session, Node, node_id)
        tx.lock_project(node.project_id)  # before the job's insert takes its node's key lock
        # The same click may have been sent again (a tab resends an unconfirmed Generate after
        # a reconnect) and committed by another worker while this one waited for the lock
        # (on SQLite this transaction held the only write lock from its start: nobody did).
        if not tx.serialised and (existing := _requested(tx, client_request_id)) is not None:
            return existing, 0
        if not node.prompt.strip():
            raise InvalidInput("Write a prompt before generating")
        images, used = resolve_inputs(tx.session, node) if node.kind == NodeKind.IMAGE_EDIT else ([], {})
        if node.kind == NodeKind.IMAGE_EDIT and not images:
            raise InvalidInput("An image edit node needs at least one input image")
        model = self.registry.runnable_model(node.model)
        job = Job(
            project_id=node.project_id,
            node_id=node_id,
            provider=model.provider,
            model=model.id,
            prompt=node.prompt,
            aspect_ratio=node.aspect_ratio,
            input_images=images,
            input_results=used,
            client_request_id=client_request_id or None,
            retry_of=retry_of,
            seed=job_seed(node.seed) if model.takes_seed else None,
            batch_of=batch_of,
        )
        return job, _insert(tx, job, clicked_at)

    def create_synthetic(self, project_id: int, model_id: str, prompt: str) -> JobView:
        """A self-test's job: the real chain, but no node, and never in the queue (`Job.synthetic`)."""
        with self.writer.transaction() as tx:
            get_or_404(tx.session, Project, project_id)
            model = self.registry.runnable_model(model_id)
            job = Job(
                project_id=project_id,
                provider=model.provider,
                model=model.id,
                prompt=prompt,
                aspect_ratio="1:1",
                synthetic=True,
            )
            seq = _insert(tx, job)
        log_job(log, "job.created", job, seq=seq, synthetic=True)
        return JobView.of(job)

    def get(self, job_id: str) -> Job:
        with self.writer.reading() as session:
            return get_or_404(session, Job, job_id)

    def queued_ids(self, now: datetime) -> list[str]:
        """Jobs not yet handed to their provider whose next submit try is due, oldest first
        (ids only: this runs every few seconds)."""
        with self.writer.reading() as session:
            query = (
                select(Job.id)
                .where(Job.status == JobStatus.QUEUED, or_(col(Job.retry_at).is_(None), col(Job.retry_at) <= now))
                .order_by(col(Job.created_at))
            )
            return list(session.exec(query))

    def mark_submitted(self, job_id: str, task: TaskRef, first_poll_at: datetime | None = None) -> bool:
        return self._advance(
            job_id,
            JobStatus.SUBMITTED,
            provider_task_id=task.task_id,
            provider_handle=dict(task.handle),
            submitted_at=utcnow(),
            next_poll_at=first_poll_at,
        )

    def wait_to_retry(self, job_id: str, retry_at: datetime, waiting_for: str, error: str) -> bool:
        """Keep a queued job in `queued` until its next submit try at `retry_at`, saying so on its row.

        Written like any transition (row, timeline step and change event together), so every
        tab shows `waiting for <provider>` and counts down to the same instant; False when the
        job left `queued` meanwhile (cancelled), and then nothing will try it again.
        """
        now = utcnow()
        job = self.get(job_id)
        wait_s = (retry_at - now).total_seconds()
        return self._advance(
            job_id,
            JobStatus.QUEUED,
            stay=True,
            _steps=[("submit.retry_scheduled", f"{error}; next try in {wait_s:.0f} s")],
            retry_at=retry_at,
            waiting_reason=f"waiting for {waiting_for}",
            submit_failures=job.submit_failures + 1,
            failing_since=job.failing_since or now,
        )

    def note_progress(self, job_id: str, progress: str) -> bool:
        """Show the provider's live detail (queue position, last log line) on an unfinished job."""
        with self.writer.transaction() as tx:
            job = lock_job(tx, job_id)
            if job.status.is_terminal or job.progress == progress:
                return False
            job.progress = progress[:300]
            job.version += 1
            job.updated_at = utcnow()
            tx.session.add(job)
            tx.changed(job.project_id)
            return True

    def claim_due_polls(self, worker: str, now: datetime, lease_s: float, limit: int = 100) -> list[Job]:
        """Claim submitted or running jobs whose fallback poll is due and whose lease is free.

        PostgreSQL: `FOR UPDATE SKIP LOCKED`, so concurrent workers take disjoint jobs without
        waiting on each other; SQLite: `BEGIN IMMEDIATE` serialises the select and the update.
        """
        active = [JobStatus.SUBMITTED.value, JobStatus.RUNNING.value]
        due_now = (col(Job.status).in_(active), col(Job.next_poll_at) <= now, _lease_free(now))
        # Most rounds (every 0.5 s, in every worker) find nothing due: a read says so without
        # a write transaction, which on SQLite takes the one write lock the completions need.
        with self.writer.reading() as session:
            if session.exec(select(Job.id).where(*due_now).limit(1)).first() is None:
                return []
        with self.writer.transaction() as tx:
            due = list(
                tx.session.exec(
                    select(Job)
                    .where(*due_now)
                    .order_by(col(Job.next_poll_at))
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            for job in due:
                job.claimed_by, job.lease_until = worker, now + timedelta(seconds=lease_s)
                tx.session.add(job)
            return due

    def claim(self, job_id: str, worker: str, now: datetime, lease_s: float) -> bool:
        """Take one job's background work (e.g. its submission) unless another worker holds it."""
        with self.writer.transaction() as tx:
            taken = tx.session.connection().execute(
                update(Job)
                .where(col(Job.id) == job_id, or_(_lease_free(now), col(Job.claimed_by) == worker))
                .values(claimed_by=worker, lease_until=now + timedelta(seconds=lease_s))
            )
            return bool(taken.rowcount)

    def release(self, job_id: str, worker: str) -> None:
        """Give the job's lease back early (it would expire anyway)."""
        with self.writer.transaction() as tx:
            tx.session.connection().execute(
                update(Job)
                .where(col(Job.id) == job_id, col(Job.claimed_by) == worker)
                .values(claimed_by=None, lease_until=None)
            )

    def release_all(self, worker: str) -> int:
        """Give back every lease `worker` holds (its process stops), so the next worker need not
        wait for them to run out; returns how many."""
        with self.writer.transaction() as tx:
            released = tx.session.connection().execute(
                update(Job).where(col(Job.claimed_by) == worker).values(claimed_by=None, lease_until=None)
            )
            return int(released.rowcount)

    def record(self, job_id: str, step: str, detail: str = "", *, announce: bool = True, **log_fields: object) -> None:
        """One step of the chain outside a status change: a timeline line, and a log line once it is written.

        `announce` tells the tabs the timeline grew; not when the change that follows at once
        tells them anyway. `log_fields` go to the log line only.
        """
        with self.writer.transaction() as tx:
            job = lock_job(tx, job_id)
            write_step(tx, job, step, detail, announced=announce)
            if announce:
                tx.changed(job.project_id)
        log_job(log, step, job, **log_fields)

    def timeline(self, job_id: str, now: datetime | None = None) -> TimelineView:
        """The job's steps with durations, and why it looks stalled if it does."""
        with self.writer.reading() as session:
            job = get_or_404(session, Job, job_id)
            rows = list(session.exec(select(JobStep).where(JobStep.job_id == job_id).order_by(col(JobStep.at))))
        if not rows:
            return TimelineView(job_id, [])
        first = rows[0].at
        steps, previous = [], first
        for row in rows:
            steps.append(
                StepView(
                    row.step,
                    row.detail,
                    row.at.isoformat(timespec="milliseconds"),
                    _ms(row.at - first),
                    _ms(row.at - previous),
                )
            )
            previous = row.at
        stalled = ""
        quiet = ((now or utcnow()) - rows[-1].at).total_seconds()
        if not job.status.is_terminal and quiet > self.stall_after_s:
            stalled = f"No progress for {quiet / 60:.0f} min since {rows[-1].step}"
            if rows[-1].step == "poll.failed":
                stalled += f"; polling is failing: {rows[-1].detail}"
        return TimelineView(job_id, steps, stalled)

    def schedule_poll(self, job_id: str, next_poll_at: datetime) -> None:
        """Book the next poll; deliberately no version bump or change event (so no project lock:
        it holds the job's row alone and waits for nothing after it)."""
        with self.writer.transaction() as tx:
            job = get_or_404(tx.session, Job, job_id, lock=True)
            job.poll_attempts += 1
            job.next_poll_at = next_poll_at
            tx.session.add(job)

    # `receipt`: the callback that brought the change, written in its transaction.
    def mark_running(self, job_id: str, receipt: Receipt | None = None) -> bool:
        return self._advance(job_id, JobStatus.RUNNING, receipt)

    def fail(
        self, job_id: str, error: str, receipt: Receipt | None = None, steps: Sequence[tuple[str, str]] = ()
    ) -> bool:
        """`steps`: what happened just before, for the timeline (e.g. the task cancelled at its provider)."""
        return self._advance(job_id, JobStatus.FAILED, receipt, steps, error=error[:2000])

    def cancel(self, job_id: str, receipt: Receipt | None = None) -> bool:
        return self._advance(job_id, JobStatus.CANCELLED, receipt, error="Cancelled by user")

    def complete(self, job_id: str, image_path: str, download: str = "", receipt: Receipt | None = None) -> bool:
        """`download` describes the fetch (bytes, ms) for the timeline."""
        return self._advance(
            job_id,
            JobStatus.COMPLETED,
            receipt,
            image_path=image_path,
            _steps=[("image.downloaded", download), ("image.stored", image_path)],
        )

    def receive(self, job_id: str, receipt: Receipt) -> None:
        """A callback that brings no change (its job already finished, or it was refused)."""
        with self.writer.transaction() as tx:
            _write_receipt(tx, lock_job(tx, job_id), receipt)

    def delivery_seen(self, fingerprint: str) -> bool:
        with self.writer.reading() as session:
            return session.get(WebhookDelivery, fingerprint) is not None

    def retry(self, job_id: str) -> JobView:
        job = self.get(job_id)
        if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
            raise InvalidInput(f"Only failed or cancelled jobs can be retried (this one is {job.status.value})")
        if job.node_id is None:
            raise InvalidInput("The node of this job was deleted")
        return self.create(job.node_id, retry_of=job.id)

    def _advance(
        self,
        job_id: str,
        status: JobStatus,
        receipt: Receipt | None = None,
        _steps: Sequence[tuple[str, str]] = (),
        *,
        stay: bool = False,
        **fields: object,
    ) -> bool:
        """Move a job forward; returns False (and changes nothing but the receipt) for a stale update.

        One short transaction: the row, the node, the timeline (`_steps` happened just
        before), the callback's receipt, the result's media grant and the change event.
        `stay`: the job keeps its status `status` and only its fields change (a queued job
        waiting for its next submit try), still row, steps and change event together.
        """
        with self.writer.transaction() as tx:
            job = lock_job(tx, job_id)
            # Settling writes the node and moves the run plan: their locks come first (see lock_nodes).
            nodes = lock_nodes(tx, job.project_id) if status.is_terminal else {}
            if receipt is not None:
                _write_receipt(tx, job, receipt)
            previous = job.status
            facts = JobFacts(job.status, job.error, job.provider_task_id, job.image_path)
            transition = decide(facts, JobEvent(status, fields, _steps, stay), utcnow())
            if transition is None:
                log_job(log, "job.update_dropped", job, status=status.value, current=previous.value)
                return False
            for name, value in transition.fields.items():
                setattr(job, name, value)
            job.version += 1
            if transition.settles:
                self._settle_node(tx, job, nodes.get(job.node_id) if job.node_id is not None else None)
            if transition.grants_image:
                use_media(tx.session, job.project_id, [transition.grants_image])
            for step, detail in transition.steps:
                write_step(tx, job, step, detail)
            job.steps += 1  # and `_publish`'s, below: counted before any flush, so the row is written once
            tx.session.add(job)
            if transition.settles and not job.synthetic:
                plan = self.on_settled(tx, job, nodes) if self.on_settled is not None else None
                # Once, after the node and the run plan changed: both decide every node's label.
                write_labels(tx, job.project_id, nodes, plan)
            seq = _publish(tx, job, counted=True)  # last: one flush and one read of the sequence for all of it
        log_job(
            log,
            "job.updated",
            job,
            status=job.status.value,  # `status` but for a submission its provider's callback overtook
            previous=previous.value,
            version=job.version,
            seq=seq,
            retry_at=job.retry_at.isoformat() if job.retry_at else None,
        )
        return True

    @staticmethod
    def _settle_node(tx: Transaction, job: Job, node: Node | None) -> None:
        """Show a finished job's outcome in its node (same transaction as the job; the node as
        `lock_nodes` locked and loaded it, None when the job has none or it was deleted)."""
        if job.node_id is None or node is None or job.status == JobStatus.CANCELLED:
            return
        image = job.image_path if job.status == JobStatus.COMPLETED else None
        if image:
            tx.session.add(NodeResult(node_id=job.node_id, job_id=job.id, image_path=image))
        # A job that finishes after a newer one of the same node must not replace its outcome;
        # in a batch (one Generate's `Images`) the first result is the current one, the others
        # join the history: a job of the batch is no newer outcome than another.
        batch = job.batch_of or job.id
        # Both reads are of other jobs, which this transaction has not changed: no flush first
        # (it would write this job's row now and again for the steps that follow).
        with tx.session.no_autoflush:
            newer_outcome = tx.session.exec(
                select(Job.id).where(
                    Job.node_id == job.node_id,
                    col(Job.created_at) > job.created_at,
                    col(Job.status).in_([JobStatus.COMPLETED.value, JobStatus.FAILED.value]),
                    _batch_of_row() != batch,
                )
            ).first()
            # Another result of this batch is current already: this one only joins the history.
            batch_shown = (
                bool(image)
                and node.result_job_id not in (None, job.id)
                and tx.session.exec(
                    select(Job.id).where(Job.id == node.result_job_id, _batch_of_row() == batch)
                ).first()
                is not None
            )
        if image:  # set after the reads above, so the node's row is written once, below
            node.latest_result = image
        if newer_outcome is None and not batch_shown:
            node.image_path = image or node.image_path
            node.result_job_id = job.id if image else node.result_job_id
            node.error = None if image else job.error
        Canvas.bump_node(tx, node)  # its label is written with the others', once the plan moved (`_advance`)


def _batch_of_row() -> ColumnElement[str]:
    """A job row's batch: the first job of its Generate (its own id for that first)."""
    return func.coalesce(Job.batch_of, Job.id)


def job_seed(typed: str) -> int:
    """The node's `Seed` as typed (checked by `Canvas.update_node`), or a random one."""
    return int(typed) if typed else secrets.randbelow(MAX_SEED + 1)


def _requested(tx: Transaction, client_request_id: str | None) -> Job | None:
    """The job an earlier send of the same click made, if any."""
    if not client_request_id:
        return None
    return tx.session.exec(select(Job).where(Job.client_request_id == client_request_id)).first()


def _insert(tx: Transaction, job: Job, clicked_at: datetime | None = None) -> int:
    """Write a new job and its first steps; returns the change's sequence number.

    The steps are counted before the job's insert (`_publish` flushes it), so its row is written once.
    """
    tx.session.add(job)
    if clicked_at is not None:
        write_step(tx, job, "generate.clicked", "browser clock", at=clicked_at)
    write_step(tx, job, "job.created", f"{job.provider} {job.model}")
    return _publish(tx, job)


def _publish(tx: Transaction, job: Job, *, counted: bool = False) -> int:
    """Put the job's change in the feed, and in the delivery ledger that waits for each tab to show it.

    Its `change.published` step is counted in `job.steps` before the flush that writes the
    change, so the row is not written again for it; `counted`: the caller counted it already
    (its own work flushes the row earlier: `write_labels` publishes the labels it changed).
    """
    if not counted:
        job.steps += 1
        tx.session.add(job)
    seq = tx.changed(job.project_id)
    write_step(tx, job, "change.published", f"seq {seq}", counted=True)
    tx.session.add(FeedChange(project_id=job.project_id, seq=seq, job_id=job.id))
    return seq


def lock_job(tx: Transaction, job_id: str) -> Job:
    """A job to change, locked after its project (`Transaction.lock_project`)."""
    if tx.serialised:
        return get_or_404(tx.session, Job, job_id)  # no row locks, so no order to keep: one read
    project_id = tx.session.exec(select(Job.project_id).where(col(Job.id) == job_id)).first()
    if project_id is None:
        raise NotFound(f"Job {job_id} not found")
    tx.lock_project(project_id)
    return get_or_404(tx.session, Job, job_id, lock=True)


def _write_receipt(tx: Transaction, job: Job, receipt: Receipt) -> None:
    # Not announced: the status change in the same transaction tells the tabs, if there is one.
    write_step(tx, job, "webhook.received", receipt.detail, at=receipt.at)
    if receipt.fingerprint:
        # A concurrent apply of the same delivery already remembered it: one record is enough.
        insert_or_ignore(
            tx.session, WebhookDelivery, fingerprint=receipt.fingerprint, job_id=job.id, received_at=receipt.at
        )


def write_step(
    tx: Transaction,
    job: Job,
    step: str,
    detail: str = "",
    at: datetime | None = None,
    *,
    announced: bool = False,
    counted: bool = False,
) -> None:
    """The one writer of timeline steps, inside the caller's transaction (`JobBook.record` opens one).

    `announced` makes the step itself a change event (steps of a status change need not be).
    `counted`: `job.steps` counts it already (see `_publish`): the job is not written again for it.
    """
    tx.add_row(
        JobStep,
        moves_feed=announced,
        job_id=job.id,
        step=step,
        detail=detail[:500],
        at=at or utcnow(),
        announced=announced,
    )
    if not counted:
        job.steps += 1
        tx.session.add(job)


def _lease_free(now: datetime) -> ColumnElement[bool]:
    """No worker holds the job, or its worker's lease ran out (it died or hung)."""
    return or_(col(Job.lease_until).is_(None), col(Job.lease_until) <= now)


def _ms(delta: timedelta) -> int:
    return round(delta.total_seconds() * 1000)


def place_of(reader: SessionFactory, job_id: str) -> tuple[int, int] | None:
    """(project id, node id) of a job, for its progress rows; None when there is no such job."""
    with reader() as session:
        job = session.get(Job, job_id)
        return (job.project_id, job.node_id or 0) if job is not None else None
