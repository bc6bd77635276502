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
from core.jobs.async_book import AsyncJobBook
from core.jobs.book import Receipt
from core.jobs.progress import Phase, ProgressBoard
from core.jobs.throttle import SubmitThrottle
from core.logs import get_logger, log_job
from core.media.fetch import FetchPolicy, fetch_image
from core.media.store import ImageRejected, MediaStore
from core.people.access import MediaLinks
from core.retries import RECORD_RETRY, RetryPolicy, is_database_failure
from models.tables import Job, utcnow
from models.views import JobView

log = get_logger("pipeline")


class Pipeline:
    def __init__(
        self,
        jobs: AsyncJobBook,
        registry: ProviderRegistry,
        media: MediaStore,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        own_url: str,
        fetch: FetchPolicy,
        links: MediaLinks,
        retry: RetryPolicy,
        lease_s: float,
        database_lost_within: Callable[[float], bool],
        first_poll_s: float,
        throttle: SubmitThrottle,
        progress: ProgressBoard,
    ) -> None:
        self.jobs = jobs
        self.registry = registry
        self.media = media
        self.http = http
        self.base_url = base_url
        self.own_url = own_url
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
        #: Where what providers say about an unfinished job goes (in memory, pushed to the tabs).
        self.progress = progress
        self._submitting: set[str] = set()
        #: Next submit tries this process scheduled, by job: a timer, not a sleeping task, so
        #: `drain` does not wait for them; the database's `retry_at` is what survives a restart.
        self._retries: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._job_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        #: The loop this pipeline's tasks run on: the one it was built on, else the one `serve` names.
        self._loop: asyncio.AbstractEventLoop | None = None
        with contextlib.suppress(RuntimeError):
            self._loop = asyncio.get_running_loop()

    def serve(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run this pipeline's background work on `loop` (the app's, once it starts)."""
        self._loop = loop

    def app_url_for(self, job: Job) -> str:
        """The app's address as the job's provider must use it: public for one on the internet,
        loopback for one running here. The realtime self-test's job (`Job.synthetic`) takes the
        public URL whatever its provider: crossing it is what that test is for."""
        if job.synthetic or not self.registry.get(job.provider).runs_here:
            return self.base_url
        return self.own_url

    def callback_url(self, job: Job) -> str:
        return f"{self.app_url_for(job)}/api/webhooks/{job.provider}/{job.id}/{job.callback_token}"

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _lock(self, job_id: str) -> asyncio.Lock:
        lock = self._job_locks.get(job_id)
        if lock is None:
            lock = self._job_locks[job_id] = asyncio.Lock()
        return lock

    def forget_retries(self) -> None:
        """Drop this process's retry timers (shutdown): another worker, or the next start, takes them."""
        for timer in self._retries.values():
            timer.cancel()
        self._retries.clear()

    async def drain(self) -> None:
        """Wait for background submissions (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # Generate -----------------------------------------------------------
    async def generate(
        self, node_id: int, client_request_id: str | None = None, clicked_at: datetime | None = None
    ) -> JobView:
        """Insert the node's jobs (its `Images`) and return at once; submission continues in the background."""
        views = await self.jobs.create_batch(node_id, client_request_id, clicked_at)
        for view in views:
            if view.status == JobStatus.QUEUED:
                self.start_submission(view.id)
        return views[0]

    async def retry_job(self, job_id: str) -> JobView:
        view = await self.jobs.retry(job_id)
        self.start_submission(view.id)
        return view

    def start_submission(self, job_id: str) -> None:
        """Submit a queued job in the background."""
        self._spawn(self.submit(job_id))

    def submit_soon(self, job_id: str) -> None:
        """`start_submission` from any thread: for a job a transaction queued (a run plan's step),
        called once it committed, wherever it ran. With no loop yet, the sweep of queued jobs
        (`resume_unfinished`) submits it."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is loop:
            self.start_submission(job_id)
        else:
            loop.call_soon_threadsafe(self.start_submission, job_id)

    async def submit(self, job_id: str) -> None:
        """Submit under this worker's claim, so a job is submitted by one worker only (and once here)."""
        if job_id in self._submitting:
            return
        self._submitting.add(job_id)
        retry_in: float | None = None
        try:
            if not await self.jobs.claim(job_id, self.worker_id, utcnow(), self.lease_s):
                return
            try:
                retry_in = await self._submit(job_id)
            finally:
                # Unreleased (the database gone again), the claim simply runs out.
                with contextlib.suppress(OperationalError):
                    await self.jobs.release(job_id, self.worker_id)
        finally:
            self._submitting.discard(job_id)
        if retry_in is not None:
            # Only now: a timer firing while this try still held the job would find it busy here.
            self._retry_later(job_id, retry_in)

    async def _submit(self, job_id: str) -> float | None:
        """One try; returns the seconds until the next one when the job now waits for it."""
        job = await self.jobs.get(job_id)
        if job.status != JobStatus.QUEUED:
            return None  # cancelled or submitted meanwhile
        if job.retry_at is not None and (early_s := (job.retry_at - utcnow()).total_seconds()) > 0:
            return early_s  # not due yet (a timer may fire a little early): wait for it again
        provider = self.registry.get(job.provider)
        request = SubmitRequest(
            job_id=job.id,
            model=job.model,
            prompt=job.prompt,
            aspect_ratio=job.aspect_ratio,
            callback_url=self.callback_url(job),
            # Signed, because stored images are private and the provider has no session.
            input_image_urls=tuple(self.app_url_for(job) + self.links.sign(path) for path in job.input_images),
            seed=job.seed,
        )
        if not await self._wait_for_submit_slot(job, provider):
            return None  # cancelled while waiting
        started = time.perf_counter()
        try:
            task = await self._submit_once(provider, request, job)
        except ProviderError as error:
            return await self._after_failed_try(job, provider, error)
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        log_job(log, "provider.submitted", job, task_id=task.task_id, duration_ms=duration_ms)
        first_poll = utcnow() + timedelta(seconds=self.first_poll_s)
        if not await self._record_submission(job, task, first_poll):
            current = await self.jobs.get(job_id)
            if current.provider_task_id != task.task_id:
                # Cancelled while the provider was answering, or another worker's submission
                # was written first (a database outage longer than the lease): stop this task.
                await self.cancel_at_provider(job, task)
        return None

    async def _after_failed_try(self, job: Job, provider: Provider, error: ProviderError) -> float | None:
        """Fail the job, or keep it `queued` until its next try if the provider may recover in time;
        returns the seconds until that try.

        The wait is a time in the database, not a worker asleep: this worker sets a timer, and
        if it dies or restarts, any worker's sweep (`resume_unfinished`) submits the job once
        it is due. A Cancel meanwhile moves the job out of `queued`, so no later try submits it.
        """
        now = utcnow()
        failing_for_s = (now - job.failing_since).total_seconds() if job.failing_since else 0.0
        wait_s = self.retry.next_try_in(error, job.submit_failures + 1, failing_for_s)
        if wait_s is None:
            message = error.message
            if error.retryable:
                message += f"; still failing after trying for {span(failing_for_s)}"
            await self.jobs.fail(job.id, message)
            return None
        retry_at = now + timedelta(seconds=wait_s)
        if not await self.jobs.wait_to_retry(job.id, retry_at, provider.label, error.message):
            return None  # cancelled meanwhile
        return max(0.0, (retry_at - utcnow()).total_seconds())

    def _retry_later(self, job_id: str, wait_s: float) -> None:
        def due() -> None:
            self._retries.pop(job_id, None)
            self.start_submission(job_id)

        if (earlier := self._retries.pop(job_id, None)) is not None:
            earlier.cancel()
        self._retries[job_id] = asyncio.get_running_loop().call_later(wait_s, due)

    async def _record_submission(self, job: Job, task: TaskRef, first_poll: datetime) -> bool:
        """Write down the task the provider accepted, through a database restart.

        Losing it would lose the job's result and, once the claim ran out, submit the job
        again. Repeating the write is safe: the transition is forward-only.
        """
        async for attempt in RECORD_RETRY.attempts_on(is_database_failure):
            with attempt:
                if attempt.num > 1:
                    log_job(log, "provider.record_retried", job, task_id=task.task_id, attempt=attempt.num)
                return await self.jobs.mark_submitted(job.id, task, first_poll)
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
            if (await self.jobs.get(job.id)).status != JobStatus.QUEUED:
                return False
            if not waited:
                waited = True
                await self.jobs.record(job.id, "submit.throttled", reason, announce=False, wait_s=round(wait_s, 1))
                await self.jobs.note_progress(job.id, reason)
            await self.jobs.claim(job.id, self.worker_id, utcnow(), self.lease_s + wait_s)
            await asyncio.sleep(wait_s)
        if waited:
            await self.jobs.note_progress(job.id, "")
        return True

    async def _submit_once(self, provider: Provider, request: SubmitRequest, job: Job) -> TaskRef:
        """One try; a failure is logged and raised as a `ProviderError` saying whether to try again."""
        try:
            return await provider.submit(request)
        except (ProviderError, httpx.HTTPError) as exc:
            error = provider_error(provider.label, exc)
            log_job(
                log,
                "provider.submit_failed",
                job,
                error=error.message,
                attempt=job.submit_failures + 1,
                retryable=error.retryable,
            )
            if error is exc:
                raise
            raise error from exc

    async def cancel(self, job_id: str) -> bool:
        """Cancel locally at once (the user's choice is final), then tell the provider."""
        job = await self.jobs.get(job_id)
        cancelled = await self.jobs.cancel(job_id)
        if cancelled:
            self.progress.forget(job_id)
        if (timer := self._retries.pop(job_id, None)) is not None:
            timer.cancel()  # no use waking up: the job left `queued`
        if cancelled and (task := task_of(job)) is not None:
            outcome = await self.cancel_at_provider(job, task)
            await self.jobs.record(job_id, "provider.cancel", outcome)
        return cancelled

    async def cancel_at_provider(self, job: Job, task: TaskRef) -> str:
        """Ask the job's provider to stop its task where its API allows; returns what happened,
        for the timeline. Whatever the task still reports afterwards is dropped (the job ended)."""
        provider = self.registry.get(job.provider)
        if not provider.can_cancel:
            return f"{provider.label} has no cancel; its result will be ignored"
        try:
            await provider.cancel(task)
        except (ProviderError, httpx.HTTPError) as exc:
            error = provider_error(provider.label, exc)
            log_job(log, "provider.cancel_failed", job, error=error.message)
            return f"cancel at {provider.label} failed ({error.message}); its result will be ignored"
        return f"cancelled at {provider.label}"

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
        for job_id in await self.jobs.queued_ids(utcnow()):
            self._spawn(self.submit(job_id))

    # Provider updates ---------------------------------------------------
    async def apply(self, job_id: str, update: TaskUpdate, receipt: Receipt | None = None) -> None:
        """Apply a provider's word on a task, from a webhook (with its `receipt`) or a poll alike.

        One at a time per job. A result image we refuse fails the job when our own poll
        found it; from a webhook it raises `ImageRejected` and changes nothing (webhooks
        are untrusted input). A webhook's change, receipt included, is one transaction.
        """
        async with self._lock(job_id):
            job = await self.jobs.get(job_id)
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
                    await self.jobs.receive(job_id, receipt)
                return
            if update.status == JobStatus.RUNNING:
                await self.jobs.mark_running(job_id, receipt)
            elif update.status == JobStatus.FAILED:
                error = update.error or "The provider reported a failure"
                await self.jobs.fail(job_id, error, receipt)
            elif update.status == JobStatus.CANCELLED:
                await self.jobs.cancel(job_id, receipt)
            elif update.status == JobStatus.COMPLETED:
                try:
                    await self._store_result(job, update, receipt)
                except ImageRejected as exc:
                    log_job(log, "image.rejected", job, error=str(exc), retryable=exc.retryable)
                    if receipt is not None:
                        raise
                    if exc.retryable:
                        # The download broke, not the image: the next poll (already scheduled) asks again.
                        await self.jobs.record(job.id, "image.download_failed", str(exc))
                        return
                    await self.jobs.fail(job.id, str(exc))
            elif receipt is not None:  # queued or submitted: nothing to move
                await self.jobs.receive(job_id, receipt)
            if update.status.is_terminal:
                self.progress.forget(job_id)
                return
            self.progress.report(job_id, update.status, update.live)
            if update.progress:
                await self.jobs.note_progress(job_id, update.progress)

    async def _store_result(self, job: Job, update: TaskUpdate, receipt: Receipt | None) -> None:
        if not update.result_urls:
            await self.jobs.fail(job.id, "The provider finished without an image", receipt)
            return
        started = time.perf_counter()
        self.progress.place(job.id, job.project_id, job.node_id or 0)  # the row in hand: no read to push
        self.progress.report(job.id, Phase.STORING)
        data = await fetch_image(self.http, update.result_urls[0], self.fetch)
        path = await asyncio.to_thread(self.media.save, data)
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        log_job(log, "image.stored", job, bytes=len(data), path=path, duration_ms=duration_ms)
        # The project's right to the image (its members see it) is written with the result (JobBook.complete).
        await self.jobs.complete(job.id, path, f"{len(data)} bytes in {duration_ms} ms", receipt)


def task_of(job: Job) -> TaskRef | None:
    return TaskRef(job.provider_task_id, job.provider_handle) if job.provider_task_id else None


def span(seconds: float) -> str:
    """A duration as people say it in a message: "42 s", "10 min"."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def provider_error(provider_label: str, exc: Exception) -> ProviderError:
    """Network trouble is worth retrying; a provider's own refusal says whether it is."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, httpx.TimeoutException):
        return ProviderError(f"{provider_label} did not answer in time", retryable=True)
    return ProviderError(f"{provider_label} is unreachable ({type(exc).__name__})", retryable=True)
