"""The async half of the update chain: submit, receive, confirm, store, complete.

    Generate -> JobBook.create -> submit (retried with backoff) -> provider task id
    webhook or poll -> TaskUpdate -> fetch + store image -> JobBook.complete -> change event

Webhooks and polls meet in `apply`, serialised per job, and the job's status only
moves forward, so whichever arrives first wins and the other is a no-op. Database
work runs in a thread so the event loop (and every websocket) never waits on it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import weakref
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from core.access import Access, MediaLinks
from core.contract import (
    JobStatus,
    ProviderError,
    ProviderRegistry,
    SubmitRequest,
    TaskRef,
    TaskUpdate,
    WebhookRejected,
)
from core.db import WORKER_ID
from core.errors import NotFound
from core.fetch import FetchPolicy, fetch_image
from core.jobs import JobBook
from core.logs import get_logger, log_step
from core.media import ImageRejected, MediaStore
from models.tables import Job, utcnow
from models.views import JobView

log = get_logger("pipeline")


@dataclass(frozen=True)
class WebhookOutcome:
    status_code: int
    message: str


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for provider calls that may succeed when tried again."""

    attempts: int = 4
    base_s: float = 1.0
    cap_s: float = 30.0

    def delay(self, attempt: int, retry_after_s: float | None = None) -> float:
        return max(min(self.cap_s, self.base_s * 2**attempt), retry_after_s or 0.0)


@dataclass(frozen=True)
class PollPolicy:
    start_s: float = 2.5
    cap_s: float = 30.0
    timeout_s: float = 15 * 60

    def next_delay(self, attempts: int) -> float:
        return min(self.cap_s, self.start_s * 1.5**attempts)


class Pipeline:
    def __init__(
        self,
        jobs: JobBook,
        registry: ProviderRegistry,
        media: MediaStore,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        fetch: FetchPolicy,
        access: Access,
        links: MediaLinks,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        lease_s: float = 120.0,
    ) -> None:
        self.jobs = jobs
        self.registry = registry
        self.media = media
        self.http = http
        self.base_url = base_url
        self.fetch = fetch
        self.access = access
        self.links = links
        self.retry = retry or RetryPolicy()
        self.poll = poll or PollPolicy()
        #: This process among the workers sharing the database, and how long its claims last:
        #: longer than one submit or poll takes, short enough that a dead worker's jobs move on.
        self.worker_id = WORKER_ID
        self.lease_s = lease_s
        self._submitting: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._job_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def callback_url(self, job: Job) -> str:
        return f"{self.base_url}/api/webhooks/{job.provider}/{job.id}/{job.callback_token}"

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _lock(self, job_id: str) -> asyncio.Lock:
        lock = self._job_locks.get(job_id)
        if lock is None:
            lock = self._job_locks[job_id] = asyncio.Lock()
        return lock

    async def drain(self) -> None:
        """Wait for background submissions (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # Generate -----------------------------------------------------------
    async def _step(self, job: Job, step: str, detail: str, *, announce: bool = True, **fields: Any) -> None:
        """One step of the chain: a structured log line and a line in the job's timeline.

        `announce=False` when the change that follows at once will tell the tabs anyway.
        """
        log_step(log, step, job_id=job.id, project_id=job.project_id, provider=job.provider, **fields)
        await asyncio.to_thread(self.jobs.note, job.id, step, detail, announce=announce)

    def record_delivery(self, job_ids: list[str], seq: int, tabs: int) -> None:
        """Timeline step "delivered to N tabs", written after the push so it never delays one.

        Not announced to the tabs: announcing a delivery would cause another delivery.
        """
        for job_id in job_ids:
            self._spawn(
                asyncio.to_thread(self.jobs.note, job_id, "feed.delivered", f"seq {seq} to {tabs} tabs", announce=False)
            )

    async def generate(
        self, node_id: int, client_request_id: str | None = None, clicked_at: datetime | None = None
    ) -> JobView:
        """Insert the job and return at once; submission continues in the background."""
        view = await asyncio.to_thread(self.jobs.create, node_id, client_request_id, None, clicked_at)
        if view.status == JobStatus.QUEUED:
            self.start_submission(view.id)
        return view

    async def retry_job(self, job_id: str) -> JobView:
        view = await asyncio.to_thread(self.jobs.retry, job_id)
        self.start_submission(view.id)
        return view

    def start_submission(self, job_id: str) -> None:
        """Submit a queued job in the background."""
        self._spawn(self.submit(job_id))

    async def submit(self, job_id: str) -> None:
        """Submit under this worker's claim, so a job is submitted by one worker only (and once here)."""
        if job_id in self._submitting:
            return
        self._submitting.add(job_id)
        try:
            if not await asyncio.to_thread(self.jobs.claim, job_id, self.worker_id, utcnow(), self.lease_s):
                return
            try:
                await self._submit(job_id)
            finally:
                await asyncio.to_thread(self.jobs.release, job_id, self.worker_id)
        finally:
            self._submitting.discard(job_id)

    async def _submit(self, job_id: str) -> None:
        job = await asyncio.to_thread(self.jobs.get, job_id)
        request = SubmitRequest(
            job_id=job.id,
            model=job.model,
            prompt=job.prompt,
            aspect_ratio=job.aspect_ratio,
            callback_url=self.callback_url(job),
            # Signed, because stored images are private and the provider has no session.
            input_image_urls=tuple(self.base_url + self.links.sign(path) for path in job.input_images),
        )
        provider = self.registry.get(job.provider)
        for attempt in range(self.retry.attempts):
            if (await asyncio.to_thread(self.jobs.get, job_id)).status != JobStatus.QUEUED:
                return  # cancelled meanwhile
            started = time.perf_counter()
            try:
                task = await provider.submit(request)
                break
            except (ProviderError, httpx.HTTPError) as exc:
                error = _provider_error(job.provider, exc)
                last = attempt == self.retry.attempts - 1
                log_step(
                    log,
                    "provider.submit_failed",
                    job_id=job_id,
                    project_id=job.project_id,
                    provider=job.provider,
                    error=error.message,
                    attempt=attempt + 1,
                    will_retry=error.retryable and not last,
                )
                if not error.retryable or last:
                    await asyncio.to_thread(self.jobs.fail, job_id, error.message)
                    return
                await asyncio.sleep(self.retry.delay(attempt, error.retry_after_s))
        log_step(
            log,
            "provider.submitted",
            job_id=job_id,
            project_id=job.project_id,
            provider=job.provider,
            task_id=task.task_id,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        first_poll = utcnow() + timedelta(seconds=self.poll.start_s)
        if not await asyncio.to_thread(self.jobs.mark_submitted, job_id, task, first_poll):
            current = await asyncio.to_thread(self.jobs.get, job_id)
            if current.status == JobStatus.CANCELLED:
                # Cancelled while the provider was answering: tell it to stop.
                await self._cancel_at_provider(job.provider, task, job_id)

    async def cancel(self, job_id: str) -> bool:
        """Cancel locally at once (the user's choice is final), then tell the provider."""
        job = await asyncio.to_thread(self.jobs.get, job_id)
        cancelled = await asyncio.to_thread(self.jobs.cancel, job_id)
        if cancelled and (task := _task_of(job)) is not None:
            await self._cancel_at_provider(job.provider, task, job_id)
        return cancelled

    async def _cancel_at_provider(self, provider: str, task: TaskRef, job_id: str) -> None:
        try:
            await self.registry.get(provider).cancel(task)
        except (ProviderError, httpx.HTTPError) as exc:
            log_step(log, "provider.cancel_failed", job_id=job_id, provider=provider, error=str(exc))

    async def resume_unfinished(self) -> None:
        """Submit queued jobs nobody is submitting: after a restart, or when their worker died.

        Run at start and then every few seconds by each worker.

        Submitted and running jobs need nothing here: their poll schedule is in the
        database and the poller picks them up. A job another worker is submitting is
        claimed by it, so `submit` leaves it alone.
        """
        for job_id in await asyncio.to_thread(self.jobs.queued_ids):
            self._spawn(self.submit(job_id))

    # Polling ------------------------------------------------------------
    async def poll_due(self) -> int:
        """Claim and poll every job whose fallback poll is due; returns how many were polled.

        Claimed, so several worker processes never poll one job at once.
        """
        due = await asyncio.to_thread(self.jobs.claim_due_polls, self.worker_id, utcnow(), self.lease_s)
        await asyncio.gather(*(self._poll_claimed(job) for job in due))
        return len(due)

    async def _poll_claimed(self, job: Job) -> None:
        try:
            await self._poll(job)
        finally:
            await asyncio.to_thread(self.jobs.release, job.id, self.worker_id)

    async def _poll(self, job: Job) -> None:
        task = _task_of(job)
        assert task is not None and job.submitted_at is not None
        waited = (utcnow() - job.submitted_at).total_seconds()
        if waited > self.poll.timeout_s:
            message = f"No result from {job.provider} after {waited / 60:.0f} min; gave up waiting (timeout)"
            log_step(log, "poll.timeout", job_id=job.id, project_id=job.project_id, provider=job.provider)
            await asyncio.to_thread(self.jobs.fail, job.id, message)
            return
        next_at = utcnow() + timedelta(seconds=self.poll.next_delay(job.poll_attempts + 1))
        await asyncio.to_thread(self.jobs.schedule_poll, job.id, next_at)
        try:
            update = await self.registry.get(job.provider).query(task)
        except (ProviderError, httpx.HTTPError) as exc:
            error = _provider_error(job.provider, exc)
            attempt = job.poll_attempts + 1
            await self._step(
                job,
                "poll.failed",
                f"attempt {attempt}: {error.message}",
                error=error.message,
                attempt=attempt,
                will_retry=error.retryable,
            )
            if not error.retryable:
                await asyncio.to_thread(self.jobs.fail, job.id, error.message)
            return
        attempt = job.poll_attempts + 1
        await self._step(
            job,
            "poll.answered",
            f"attempt {attempt}: {update.status.value}",
            status=update.status.value,
            attempt=attempt,
        )
        await self.apply(job.id, update)

    # Webhook ------------------------------------------------------------
    async def on_webhook(
        self, provider_name: str, job_id: str, token: str, headers: Mapping[str, str], body: bytes
    ) -> WebhookOutcome:
        """Verify a callback and apply it; the outcome says what to answer the provider."""
        try:
            job = await asyncio.to_thread(self.jobs.get, job_id)
        except NotFound:
            log_step(log, "webhook.rejected", job_id=job_id, provider=provider_name, reason="unknown job")
            return WebhookOutcome(404, "unknown job")
        if job.provider != provider_name or not hmac.compare_digest(job.callback_token, token):
            log_step(log, "webhook.rejected", job_id=job_id, provider=provider_name, reason="bad job token")
            return WebhookOutcome(403, "bad job token")
        provider = self.registry.get(provider_name)
        try:
            update = await provider.parse_webhook(headers, body)
        except WebhookRejected as exc:
            await self._step(job, "webhook.rejected", exc.reason, reason=exc.reason)
            return WebhookOutcome(exc.status_code, exc.reason)
        if job.provider_task_id is not None and update.task_id != job.provider_task_id:
            log_step(log, "webhook.rejected", job_id=job_id, provider=provider_name, reason="task id mismatch")
            return WebhookOutcome(409, "task id does not belong to this job")
        fingerprint = _fingerprint(provider_name, job_id, update.delivery_id, body) if update.delivery_id else ""
        replayed: bool = bool(fingerprint) and await asyncio.to_thread(self.jobs.delivery_seen, fingerprint)
        if replayed:
            await self._step(job, "webhook.rejected", "replayed delivery", reason="replayed delivery")
            return WebhookOutcome(409, "this signed delivery was already applied (replay)")
        verification = "signature verified" if update.verified else "unsigned: confirming with the provider"
        await self._step(
            job,
            "webhook.received",
            f"{update.status.value}; {verification}",
            announce=False,  # the status change it carries is pushed a moment later
            status=update.status.value,
            task_id=update.task_id,
            verified=update.verified,
        )
        if not update.verified:
            try:
                update = await provider.query(TaskRef(update.task_id, job.provider_handle))
            except (ProviderError, httpx.HTTPError) as exc:
                # The poller will ask again; the provider may retry its delivery too.
                log_step(log, "webhook.unconfirmed", job_id=job_id, error=str(exc))
                return WebhookOutcome(202, "accepted; will confirm by polling")
            log_step(log, "webhook.confirmed", job_id=job_id, status=update.status.value)
        try:
            await self.apply(job_id, update, from_webhook=True)
        except ImageRejected as exc:
            # Nothing changes: fallback polling asks the provider itself and settles the job.
            await self._step(job, "webhook.rejected", f"result refused: {exc}", reason=str(exc))
            return WebhookOutcome(422, f"result refused: {exc}")
        if fingerprint:
            await asyncio.to_thread(self.jobs.remember_delivery, fingerprint, job_id)
        return WebhookOutcome(200, "ok")

    async def apply(self, job_id: str, update: TaskUpdate, *, from_webhook: bool = False) -> None:
        """Apply a provider's word on a task, from a webhook or a poll alike (one at a time per job).

        A result image we refuse fails the job when our own poll found it; from a
        webhook it raises `ImageRejected` and changes nothing (webhooks are untrusted input).
        """
        async with self._lock(job_id):
            job = await asyncio.to_thread(self.jobs.get, job_id)
            if job.status.is_terminal:
                step = "job.late_result" if update.status == JobStatus.COMPLETED else "job.update_dropped"
                log_step(
                    log,
                    step,
                    job_id=job_id,
                    project_id=job.project_id,
                    status=update.status.value,
                    current=job.status.value,
                    result_urls=list(update.result_urls),
                )
                return
            if update.status == JobStatus.RUNNING:
                await asyncio.to_thread(self.jobs.mark_running, job_id)
            elif update.status == JobStatus.FAILED:
                await asyncio.to_thread(self.jobs.fail, job_id, update.error or "The provider reported a failure")
            elif update.status == JobStatus.CANCELLED:
                await asyncio.to_thread(self.jobs.cancel, job_id)
            elif update.status == JobStatus.COMPLETED:
                try:
                    await self._store_result(job, update)
                except ImageRejected as exc:
                    log_step(log, "image.rejected", job_id=job.id, project_id=job.project_id, error=str(exc))
                    if from_webhook:
                        raise
                    await asyncio.to_thread(self.jobs.fail, job.id, str(exc))
            if update.progress and not update.status.is_terminal:
                await asyncio.to_thread(self.jobs.note_progress, job_id, update.progress)

    async def _store_result(self, job: Job, update: TaskUpdate) -> None:
        if not update.result_urls:
            await asyncio.to_thread(self.jobs.fail, job.id, "The provider finished without an image")
            return
        started = time.perf_counter()
        data = await fetch_image(self.http, update.result_urls[0], self.fetch)
        path = await asyncio.to_thread(self.media.save, data)
        await asyncio.to_thread(self.access.grant_media_to_owner, job.project_id, path)
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        log_step(
            log,
            "image.stored",
            job_id=job.id,
            project_id=job.project_id,
            bytes=len(data),
            path=path,
            duration_ms=duration_ms,
        )
        await asyncio.to_thread(self.jobs.complete, job.id, path, f"{len(data)} bytes in {duration_ms} ms")


def _fingerprint(provider: str, job_id: str, delivery_id: str, body: bytes) -> str:
    return hashlib.sha256(f"{provider}\n{job_id}\n{delivery_id}\n".encode() + body).hexdigest()


def _task_of(job: Job) -> TaskRef | None:
    return TaskRef(job.provider_task_id, job.provider_handle) if job.provider_task_id else None


def _provider_error(provider: str, exc: Exception) -> ProviderError:
    """Network trouble is worth retrying; a provider's own refusal says whether it is."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, httpx.TimeoutException):
        return ProviderError(f"{provider} did not answer in time", retryable=True)
    return ProviderError(f"{provider} is unreachable ({type(exc).__name__})", retryable=True)
