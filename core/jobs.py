"""The job lifecycle: every change is one transaction with its change events.

Rules that keep every tab truthful:
- a job's status only moves forward (`JobStatus.rank`); terminal states are final,
  so a late or duplicated update is dropped instead of moving a job backwards;
- every accepted change bumps `version`;
- completion writes the job, the node and the node's history in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_, update
from sqlmodel import col, select

from core.access import use_media
from core.canvas import Canvas, lock_nodes
from core.changes import ChangeWriter, Transaction
from core.contract import JobStatus, NodeKind, ProviderRegistry, TaskRef
from core.db import get_or_404, insert_or_ignore
from core.errors import InvalidInput, NotFound
from core.logs import get_logger, log_job
from core.notebook import resolve_inputs
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
        #: What follows a job's end in its own transaction: the run plan moves on (core/plan.py).
        self.on_settled: Callable[[Transaction, Job], None] | None = None

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

    def queue_in(
        self,
        tx: Transaction,
        node_id: int,
        client_request_id: str | None = None,
        retry_of: str | None = None,
        clicked_at: datetime | None = None,
    ) -> tuple[Job, int]:
        """`create` inside the caller's transaction (a run plan starts nodes in its own);
        returns the job and its change's sequence number (0 for a repeated request)."""
        if (existing := _requested(tx, client_request_id)) is not None:
            return existing, 0
        node = get_or_404(tx.session, Node, node_id)
        tx.lock_project(node.project_id)  # before the job's insert takes its node's key lock
        # The same click may have been sent again (a tab resends an unconfirmed Generate after
        # a reconnect) and committed by another worker while this one waited for the lock.
        if (existing := _requested(tx, client_request_id)) is not None:
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

    def queued_ids(self) -> list[str]:
        """Jobs not yet handed to their provider, oldest first (ids only: this runs every few seconds)."""
        with self.writer.reading() as session:
            query = select(Job.id).where(Job.status == JobStatus.QUEUED).order_by(col(Job.created_at))
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
        with self.writer.transaction() as tx:
            active = [JobStatus.SUBMITTED.value, JobStatus.RUNNING.value]
            due = list(
                tx.session.exec(
                    select(Job)
                    .where(col(Job.status).in_(active), col(Job.next_poll_at) <= now, _lease_free(now))
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

    def note(self, job_id: str, step: str, detail: str = "", *, announce: bool = True) -> None:
        """Add a timeline step outside a status change; `announce` tells the tabs it grew."""
        with self.writer.transaction() as tx:
            job = lock_job(tx, job_id)
            add_step(tx, job, step, detail, announced=announce)
            if announce:
                tx.changed(job.project_id)

    def record_step(self, job: Job, step: str, detail: str, *, announce: bool = True, **fields: object) -> None:
        """One step of the chain outside a status change: a log line and a timeline line.

        `announce=False` when the change that follows at once will tell the tabs anyway.
        """
        log_job(log, step, job, **fields)
        self.note(job.id, step, detail, announce=announce)

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

    def fail(self, job_id: str, error: str, receipt: Receipt | None = None) -> bool:
        return self._advance(job_id, JobStatus.FAILED, receipt, error=error[:2000])

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
        **fields: object,
    ) -> bool:
        """Move a job forward; returns False (and changes nothing but the receipt) for a stale update.

        One short transaction: the row, the node, the timeline (`_steps` happened just
        before), the callback's receipt, the result's media grant and the change event.
        """
        with self.writer.transaction() as tx:
            job = lock_job(tx, job_id)
            if status.is_terminal:
                # Settling writes the node and moves the run plan: their locks come first (see lock_nodes).
                lock_nodes(tx, job.project_id)
            if receipt is not None:
                _write_receipt(tx, job, receipt)
            previous = job.status
            if status.rank <= previous.rank:
                log_job(log, "job.update_dropped", job, status=status.value, current=previous.value)
                return False
            for name, value in fields.items():
                setattr(job, name, value)
            job.status = status
            job.progress = "" if status.is_terminal else job.progress
            job.version += 1
            job.updated_at = utcnow()
            if status.is_terminal:
                job.finished_at = job.updated_at
                self._settle_node(tx, job)
            if job.image_path and status == JobStatus.COMPLETED:
                use_media(tx.session, job.project_id, [job.image_path])
            for step, detail in _steps:
                add_step(tx, job, step, detail)
            add_step(tx, job, f"status.{status.value}", job.error or job.provider_task_id or "")
            tx.session.add(job)
            seq = _publish(tx, job)
            if status.is_terminal and self.on_settled is not None:
                self.on_settled(tx, job)
        log_job(log, "job.updated", job, status=status.value, previous=previous.value, version=job.version, seq=seq)
        return True

    @staticmethod
    def _settle_node(tx: Transaction, job: Job) -> None:
        """Show a finished job's outcome in its node (same transaction as the job)."""
        if job.node_id is None or job.status == JobStatus.CANCELLED:
            return
        node = tx.session.get(Node, job.node_id, with_for_update=True)
        if node is None:
            return
        image = job.image_path if job.status == JobStatus.COMPLETED else None
        if image:
            tx.session.add(NodeResult(node_id=job.node_id, job_id=job.id, image_path=image))
        # A job that finishes after a newer one of the same node must not replace its outcome.
        newer_outcome = tx.session.exec(
            select(Job.id).where(
                Job.node_id == job.node_id,
                col(Job.created_at) > job.created_at,
                col(Job.status).in_([JobStatus.COMPLETED.value, JobStatus.FAILED.value]),
            )
        ).first()
        if newer_outcome is None:
            node.image_path = image or node.image_path
            node.result_job_id = job.id if image else node.result_job_id
            node.error = None if image else job.error
        Canvas.touch_node(tx, node)


def _requested(tx: Transaction, client_request_id: str | None) -> Job | None:
    """The job an earlier send of the same click made, if any."""
    if not client_request_id:
        return None
    return tx.session.exec(select(Job).where(Job.client_request_id == client_request_id)).first()


def _insert(tx: Transaction, job: Job, clicked_at: datetime | None = None) -> int:
    """Write a new job and its first steps; returns the change's sequence number."""
    tx.session.add(job)
    tx.session.flush()
    if clicked_at is not None:
        add_step(tx, job, "generate.clicked", "browser clock", at=clicked_at)
    add_step(tx, job, "job.created", f"{job.provider} {job.model}")
    return _publish(tx, job)


def _publish(tx: Transaction, job: Job) -> int:
    """Put the job's change in the feed, and in the delivery ledger that waits for each tab to show it."""
    seq = tx.changed(job.project_id)
    add_step(tx, job, "change.published", f"seq {seq}")
    tx.session.add(FeedChange(project_id=job.project_id, seq=seq, job_id=job.id))
    return seq


def lock_job(tx: Transaction, job_id: str) -> Job:
    """A job to change, locked after its project (`Transaction.lock_project`)."""
    project_id = tx.session.exec(select(Job.project_id).where(col(Job.id) == job_id)).first()
    if project_id is None:
        raise NotFound(f"Job {job_id} not found")
    tx.lock_project(project_id)
    return get_or_404(tx.session, Job, job_id, lock=True)


def _write_receipt(tx: Transaction, job: Job, receipt: Receipt) -> None:
    # Not announced: the status change in the same transaction tells the tabs, if there is one.
    add_step(tx, job, "webhook.received", receipt.detail, at=receipt.at)
    if receipt.fingerprint:
        # A concurrent apply of the same delivery already remembered it: one record is enough.
        insert_or_ignore(
            tx.session, WebhookDelivery, fingerprint=receipt.fingerprint, job_id=job.id, received_at=receipt.at
        )


def add_step(
    tx: Transaction, job: Job, step: str, detail: str = "", at: datetime | None = None, *, announced: bool = False
) -> None:
    """`announced` makes the step itself a change event (steps of a status change need not be)."""
    tx.session.add(JobStep(job_id=job.id, step=step, detail=detail[:500], at=at or utcnow(), announced=announced))
    job.steps += 1
    tx.session.add(job)


def _lease_free(now: datetime) -> ColumnElement[bool]:
    """No worker holds the job, or its worker's lease ran out (it died or hung)."""
    return or_(col(Job.lease_until).is_(None), col(Job.lease_until) <= now)


def _ms(delta: timedelta) -> int:
    return round(delta.total_seconds() * 1000)
