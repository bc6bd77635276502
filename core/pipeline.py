"""The async half of the update chain: submit, then apply what the provider says, and store.

    Generate -> JobBook.create -> submit (retried with backoff) -> provider task id
    webhook (core.webhooks) or poll (core.polling) -> TaskUpdate -> apply
        -> fetch + store image -> JobBook.complete -> change event

Webhooks and polls meet in `apply`, serialised per job, and the job's status only
moves forward, so whichever arrives first wins and the other is a no-op. Database
work runs in a thread so the event loop (and every websocket) never waits on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.exc import OperationalError

from core.access import MediaLinks
from core.contract import (
    JobStatus,
    Provider,
    ProviderError,
    ProviderRegistry,
    SubmitRequest,
    TaskRef,
    TaskUpdate,
)
from core.db import WORKER_ID
from core.fetch import FetchPolicy, fetch_image
from core.jobs import JobBook, Receipt
from core.logs import get_logger, log_job
from core.media import ImageRejected, MediaStore
from core.retries import RECORD_RETRY, RetryPolicy, is_database_failure
from core.throttle import SubmitThrottle
from models.tables import Job, utcnow
from models.views import JobView

log = get_logger("pipeline")


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
        links: MediaLinks,
        retry: RetryPolicy,
        lease_s: float,
        database_lost_within: Callable[[float], bool],
        first_poll_s: float,
        throttle: SubmitThrottle,
    ) -> None:
        self.jobs = jobs
        self.registry = registry
        self.media = media
        self.http = http
        self.base_url = base_url
        self.fetch = fetch
        self.links = links
        self.retry = retry
        #: Keeps new tasks within each provider's documented rate limit, per account, in this process.
        self.throttle = throttle
        #: This process among the workers sharing the database, and how long its claims last:
        #: longer than one submit or poll takes, short enough that a dead worker's jobs move on.
        self.worker_id = WORKER_ID
        self.lease_s = lease_s
        #: `Database.lost_within`: whether this process found the database gone lately.
        self.database_lost_within = database_lost_within
        #: A submitted job's first fallback poll, in case no webhook ever comes.
        self.first_poll_s = first_poll_s
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
    def record_delivery(self, job_ids: list[str], seq: int, tabs: int) -> None:
        """Timeline step "delivered to N tabs", written after the push so it never delays one.

        Not announced to the tabs: announcing a delivery would cause another delivery.
        """
        for job_id in job_ids:
            self._spawn(
                asyncio.to_thread(self.jobs.note, job_id, "room.delivered", f"seq {seq} to {tabs} tabs", announce=False)
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
                # Unreleased (the database gone again), the claim simply runs out.
                with contextlib.suppress(OperationalError):
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
        if not await self._wait_for_submit_slot(job, provider):
            return  # cancelled while waiting
        try:
            async for attempt in self.retry.attempts_on(self.retry.provider_wait):
                with attempt:
                    if (await asyncio.to_thread(self.jobs.get, job_id)).status != JobStatus.QUEUED:
                        return  # cancelled meanwhile
                    started = time.perf_counter()
                    task = await self._submit_once(provider, request, job, attempt.num)
        except ProviderError as error:  # not worth retrying, or the last attempt
            await asyncio.to_thread(self.jobs.fail, job_id, error.message)
            return
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        log_job(log, "provider.submitted", job, task_id=task.task_id, duration_ms=duration_ms)
        first_poll = utcnow() + timedelta(seconds=self.first_poll_s)
        if not await self._record_submission(job, task, first_poll):
            current = await asyncio.to_thread(self.jobs.get, job_id)
            if current.provider_task_id != task.task_id:
                # Cancelled while the provider was answering, or another worker's submission
                # was written first (a database outage longer than the lease): stop this task.
                await self._cancel_at_provider(job, task)

    async def _record_submission(self, job: Job, task: TaskRef, first_poll: datetime) -> bool:
        """Write down the task the provider accepted, through a database restart.

        Losing it would lose the job's result and, once the claim ran out, submit the job
        again. Repeating the write is safe: the transition is forward-only.
        """
        async for attempt in RECORD_RETRY.attempts_on(is_database_failure):
            with attempt:
                if attempt.num > 1:
                    log_job(log, "provider.record_retried", job, task_id=task.task_id, attempt=attempt.num)
                return await asyncio.to_thread(self.jobs.mark_submitted, job.id, task, first_poll)
        raise AssertionError("unreachable: the last attempt raises")

    async def _wait_for_submit_slot(self, job: Job, provider: Provider) -> bool:
        """Hold the job in `queued`, saying why on its row, until the provider's rate limit admits it.

        False when the job was cancelled meanwhile. The claim is renewed while waiting, so no
        other worker takes the submission over.
        """
        if provider.submit_limit is None:
            return True
        reason = f"waiting: {provider.submit_limit.reason}"
        waited = False
        while (wait_s := await self.throttle.take(provider.submit_limit, provider.name)) > 0:
            if (await asyncio.to_thread(self.jobs.get, job.id)).status != JobStatus.QUEUED:
                return False
            if not waited:
                waited = True
                await asyncio.to_thread(
                    self.jobs.record_step, job, "submit.throttled", reason, announce=False, wait_s=round(wait_s, 1)
                )
                await asyncio.to_thread(self.jobs.note_progress, job.id, reason)
            await asyncio.to_thread(self.jobs.claim, job.id, self.worker_id, utcnow(), self.lease_s + wait_s)
            await asyncio.sleep(wait_s)
        if waited:
            await asyncio.to_thread(self.jobs.note_progress, job.id, "")
        return True

    async def _submit_once(self, provider: Provider, request: SubmitRequest, job: Job, attempt: int) -> TaskRef:
        """One try; a failure is logged and raised as a `ProviderError` saying whether to try again."""
        try:
            return await provider.submit(request)
        except (ProviderError, httpx.HTTPError) as exc:
            error = provider_error(job.provider, exc)
            log_job(
                log,
                "provider.submit_failed",
                job,
                error=error.message,
                attempt=attempt,
                will_retry=error.retryable and attempt != self.retry.attempts,
            )
            if error.retryable:
                # Hold the claim through the backoff to come, or another worker's sweep submits the job too.
                hold_s = self.lease_s + (error.retry_after_s or self.retry.cap_s) + self.retry.base_s
                await asyncio.to_thread(self.jobs.claim, job.id, self.worker_id, utcnow(), hold_s)
            if error is exc:
                raise
            raise error from exc

    async def cancel(self, job_id: str) -> bool:
        """Cancel locally at once (the user's choice is final), then tell the provider."""
        job = await asyncio.to_thread(self.jobs.get, job_id)
        cancelled = await asyncio.to_thread(self.jobs.cancel, job_id)
        if cancelled and (task := task_of(job)) is not None:
            await self._cancel_at_provider(job, task)
        return cancelled

    async def _cancel_at_provider(self, job: Job, task: TaskRef) -> None:
        try:
            await self.registry.get(job.provider).cancel(task)
        except (ProviderError, httpx.HTTPError) as exc:
            log_job(log, "provider.cancel_failed", job, error=str(exc))

    async def resume_unfinished(self) -> None:
        """Submit queued jobs nobody is submitting: after a restart, or when their worker died.

        Run at start and then every few seconds by each worker.

        Submitted and running jobs need nothing here: their poll schedule is in the
        database and the poller picks them up. A job another worker is submitting is
        claimed by it, so `submit` leaves it alone.

        Nothing is taken over for one lease after the database was unreachable: its claims
        ran out with nobody able to renew them, and a live worker may hold a task the
        provider accepted that it is still writing down (`_record_submission`).
        """
        if self.database_lost_within(self.lease_s):
            return
        for job_id in await asyncio.to_thread(self.jobs.queued_ids):
            self._spawn(self.submit(job_id))

    # Provider updates ---------------------------------------------------
    async def apply(self, job_id: str, update: TaskUpdate, receipt: Receipt | None = None) -> None:
        """Apply a provider's word on a task, from a webhook (with its `receipt`) or a poll alike.

        One at a time per job. A result image we refuse fails the job when our own poll
        found it; from a webhook it raises `ImageRejected` and changes nothing (webhooks
        are untrusted input). A webhook's change, receipt included, is one transaction.
        """
        async with self._lock(job_id):
            job = await asyncio.to_thread(self.jobs.get, job_id)
            if job.status.is_terminal:
                step = "job.late_result" if update.status == JobStatus.COMPLETED else "job.update_dropped"
                log_job(
                    log,
                    step,
                    job,
                    status=update.status.value,
                    current=job.status.value,
                    result_urls=list(update.result_urls),
                )
                if receipt is not None:
                    await asyncio.to_thread(self.jobs.receive, job_id, receipt)
                return
            if update.status == JobStatus.RUNNING:
                await asyncio.to_thread(self.jobs.mark_running, job_id, receipt)
            elif update.status == JobStatus.FAILED:
                error = update.error or "The provider reported a failure"
                await asyncio.to_thread(self.jobs.fail, job_id, error, receipt)
            elif update.status == JobStatus.CANCELLED:
                await asyncio.to_thread(self.jobs.cancel, job_id, receipt)
            elif update.status == JobStatus.COMPLETED:
                try:
                    await self._store_result(job, update, receipt)
                except ImageRejected as exc:
                    log_job(log, "image.rejected", job, error=str(exc), retryable=exc.retryable)
                    if receipt is not None:
                        raise
                    if exc.retryable:
                        # The download broke, not the image: the next poll (already scheduled) asks again.
                        await asyncio.to_thread(self.jobs.note, job.id, "image.download_failed", str(exc))
                        return
                    await asyncio.to_thread(self.jobs.fail, job.id, str(exc))
            elif receipt is not None:  # queued or submitted: nothing to move
                await asyncio.to_thread(self.jobs.receive, job_id, receipt)
            if update.progress and not update.status.is_terminal:
                await asyncio.to_thread(self.jobs.note_progress, job_id, update.progress)

    async def _store_result(self, job: Job, update: TaskUpdate, receipt: Receipt | None) -> None:
        if not update.result_urls:
            await asyncio.to_thread(self.jobs.fail, job.id, "The provider finished without an image", receipt)
            return
        started = time.perf_counter()
        data = await fetch_image(self.http, update.result_urls[0], self.fetch)
        path = await asyncio.to_thread(self.media.save, data)
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        log_job(log, "image.stored", job, bytes=len(data), path=path, duration_ms=duration_ms)
        # The project's right to the image (its members see it) is written with the result (JobBook.complete).
        await asyncio.to_thread(self.jobs.complete, job.id, path, f"{len(data)} bytes in {duration_ms} ms", receipt)


def task_of(job: Job) -> TaskRef | None:
    return TaskRef(job.provider_task_id, job.provider_handle) if job.provider_task_id else None


def provider_error(provider: str, exc: Exception) -> ProviderError:
    """Network trouble is worth retrying; a provider's own refusal says whether it is."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, httpx.TimeoutException):
        return ProviderError(f"{provider} did not answer in time", retryable=True)
    return ProviderError(f"{provider} is unreachable ({type(exc).__name__})", retryable=True)
