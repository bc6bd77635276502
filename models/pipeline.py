"""The async half of the update chain: submit, receive, store, complete.

    Generate -> JobBook.create -> submit -> provider task id
    webhook  -> verify + parse -> download + store -> JobBook.complete -> change event

Every step logs `job_id` and `step`. Database work runs in a thread so the event
loop (and with it every websocket) never waits on SQLite.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from models.canvas import NotFound
from models.jobs import JobBook
from models.logs import get_logger, log_step
from models.media import ImageRejected, MediaStore, download_image
from models.tables import Job
from models.views import JobView
from providers.base import JobStatus, ProviderError, ProviderRegistry, SubmitRequest, TaskUpdate, WebhookRejected

log = get_logger("pipeline")


@dataclass(frozen=True)
class WebhookOutcome:
    status_code: int
    message: str


class Pipeline:
    def __init__(
        self,
        jobs: JobBook,
        registry: ProviderRegistry,
        media: MediaStore,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        max_image_bytes: int,
    ) -> None:
        self.jobs = jobs
        self.registry = registry
        self.media = media
        self.http = http
        self.base_url = base_url
        self.max_image_bytes = max_image_bytes
        self._tasks: set[asyncio.Task[Any]] = set()

    def callback_url(self, job: Job) -> str:
        return f"{self.base_url}/api/webhooks/{job.provider}/{job.id}/{job.callback_token}"

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for background submissions (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # Generate -----------------------------------------------------------
    async def generate(self, node_id: int, client_request_id: str | None = None) -> JobView:
        """Insert the job and return at once; submission continues in the background."""
        view = await asyncio.to_thread(self.jobs.create, node_id, client_request_id)
        if view.status == JobStatus.QUEUED:
            self._spawn(self.submit(view.id))
        return view

    async def retry(self, job_id: str) -> JobView:
        view = await asyncio.to_thread(self.jobs.retry, job_id)
        self._spawn(self.submit(view.id))
        return view

    async def submit(self, job_id: str) -> None:
        job = await asyncio.to_thread(self.jobs.get, job_id)
        if job.status != JobStatus.QUEUED:
            return
        request = SubmitRequest(
            job_id=job.id,
            model=job.model,
            prompt=job.prompt,
            aspect_ratio=job.aspect_ratio,
            callback_url=self.callback_url(job),
            input_image_urls=tuple(self.base_url + path for path in job.input_images),
        )
        started = time.perf_counter()
        try:
            task_id = await self.registry.get(job.provider).submit(request)
        except ProviderError as exc:
            log_step(
                log,
                "provider.submit_failed",
                job_id=job_id,
                project_id=job.project_id,
                provider=job.provider,
                error=exc.message,
            )
            await asyncio.to_thread(self.jobs.fail, job_id, exc.message)
            return
        except httpx.HTTPError as exc:
            message = f"{job.provider} is unreachable: {type(exc).__name__}"
            log_step(
                log,
                "provider.submit_failed",
                job_id=job_id,
                project_id=job.project_id,
                provider=job.provider,
                error=message,
            )
            await asyncio.to_thread(self.jobs.fail, job_id, message)
            return
        log_step(
            log,
            "provider.submitted",
            job_id=job_id,
            project_id=job.project_id,
            provider=job.provider,
            task_id=task_id,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        if not await asyncio.to_thread(self.jobs.mark_submitted, job_id, task_id):
            current = await asyncio.to_thread(self.jobs.get, job_id)
            if current.status == JobStatus.CANCELLED:
                # Cancelled while the provider was answering: tell it to stop.
                await self._cancel_at_provider(job.provider, task_id, job_id)

    async def cancel(self, job_id: str) -> bool:
        job = await asyncio.to_thread(self.jobs.get, job_id)
        cancelled = await asyncio.to_thread(self.jobs.cancel, job_id)
        if cancelled and job.provider_task_id:
            await self._cancel_at_provider(job.provider, job.provider_task_id, job_id)
        return cancelled

    async def _cancel_at_provider(self, provider: str, task_id: str, job_id: str) -> None:
        try:
            await self.registry.get(provider).cancel(task_id)
        except (ProviderError, httpx.HTTPError) as exc:
            log_step(log, "provider.cancel_failed", job_id=job_id, provider=provider, error=str(exc))

    async def resume_unfinished(self) -> None:
        """After a restart: resubmit queued jobs and ask providers about the rest."""
        for job in await asyncio.to_thread(self.jobs.unfinished):
            if job.status == JobStatus.QUEUED:
                self._spawn(self.submit(job.id))
            elif job.provider_task_id:
                self._spawn(self.poll_once(job))

    async def poll_once(self, job: Job) -> None:
        assert job.provider_task_id is not None
        try:
            update = await self.registry.get(job.provider).query(job.provider_task_id)
        except (ProviderError, httpx.HTTPError) as exc:
            log_step(log, "provider.poll_failed", job_id=job.id, provider=job.provider, error=str(exc))
            return
        log_step(log, "provider.polled", job_id=job.id, project_id=job.project_id, status=update.status.value)
        await self.apply(job, update)

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
        try:
            update = self.registry.get(provider_name).parse_webhook(headers, body)
        except WebhookRejected as exc:
            log_step(log, "webhook.rejected", job_id=job_id, provider=provider_name, reason=exc.reason)
            return WebhookOutcome(exc.status_code, exc.reason)
        if update.task_id != job.provider_task_id and job.provider_task_id is not None:
            log_step(log, "webhook.rejected", job_id=job_id, provider=provider_name, reason="task id mismatch")
            return WebhookOutcome(409, "task id does not belong to this job")
        log_step(
            log,
            "webhook.received",
            job_id=job_id,
            project_id=job.project_id,
            provider=provider_name,
            status=update.status.value,
            task_id=update.task_id,
        )
        await self.apply(job, update)
        return WebhookOutcome(200, "ok")

    async def apply(self, job: Job, update: TaskUpdate) -> None:
        """Apply a provider's word on a task, from a webhook or a poll alike."""
        if job.status.is_terminal:
            log_step(log, "job.update_dropped", job_id=job.id, status=update.status.value, current=job.status.value)
            return
        if update.status == JobStatus.RUNNING:
            await asyncio.to_thread(self.jobs.mark_running, job.id)
        elif update.status == JobStatus.FAILED:
            await asyncio.to_thread(self.jobs.fail, job.id, update.error or "The provider reported a failure")
        elif update.status == JobStatus.CANCELLED:
            await asyncio.to_thread(self.jobs.cancel, job.id)
        elif update.status == JobStatus.COMPLETED:
            await self._store_result(job, update)

    async def _store_result(self, job: Job, update: TaskUpdate) -> None:
        if not update.result_urls:
            await asyncio.to_thread(self.jobs.fail, job.id, "The provider finished without an image")
            return
        started = time.perf_counter()
        try:
            data = await download_image(self.http, update.result_urls[0], self.max_image_bytes)
            path = await asyncio.to_thread(self.media.save, data)
        except (ImageRejected, httpx.HTTPError) as exc:
            message = str(exc) or f"Result download failed: {type(exc).__name__}"
            log_step(log, "image.rejected", job_id=job.id, project_id=job.project_id, error=message)
            await asyncio.to_thread(self.jobs.fail, job.id, message)
            return
        log_step(
            log,
            "image.stored",
            job_id=job.id,
            project_id=job.project_id,
            bytes=len(data),
            path=path,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        await asyncio.to_thread(self.jobs.complete, job.id, path)
