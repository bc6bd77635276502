"""The job book from the event loop: every call into it crosses to a worker thread here, and only here.

`JobBook` is synchronous (SQLAlchemy sessions block); the webhook gate, the poller, the
pipeline, the self-test and the web layer run on the event loop, which must never wait on
the database. Each method is its `JobBook` twin in a thread (as httpx pairs `Client` and
`AsyncClient`), so no caller writes `asyncio.to_thread` around a job call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from core.contract import TaskRef
from core.jobs.book import JobBook, Receipt
from models.tables import Job
from models.views import JobView, TimelineView


class AsyncJobBook:
    def __init__(self, book: JobBook) -> None:
        self.book = book

    # reads
    async def get(self, job_id: str) -> Job:
        return await asyncio.to_thread(self.book.get, job_id)

    async def queued_ids(self, now: datetime) -> list[str]:
        return await asyncio.to_thread(self.book.queued_ids, now)

    async def delivery_seen(self, fingerprint: str) -> bool:
        return await asyncio.to_thread(self.book.delivery_seen, fingerprint)

    async def timeline(self, job_id: str) -> TimelineView:
        return await asyncio.to_thread(self.book.timeline, job_id)

    # new jobs
    async def create(
        self, node_id: int, client_request_id: str | None = None, clicked_at: datetime | None = None
    ) -> JobView:
        return await asyncio.to_thread(self.book.create, node_id, client_request_id, None, clicked_at)

    async def create_batch(
        self, node_id: int, client_request_id: str | None = None, clicked_at: datetime | None = None
    ) -> list[JobView]:
        return await asyncio.to_thread(self.book.create_batch, node_id, client_request_id, clicked_at)

    async def retry(self, job_id: str) -> JobView:
        return await asyncio.to_thread(self.book.retry, job_id)

    async def create_synthetic(self, project_id: int, model_id: str, prompt: str) -> JobView:
        return await asyncio.to_thread(self.book.create_synthetic, project_id, model_id, prompt)

    # who works on a job
    async def claim(self, job_id: str, worker: str, now: datetime, lease_s: float) -> bool:
        return await asyncio.to_thread(self.book.claim, job_id, worker, now, lease_s)

    async def release(self, job_id: str, worker: str) -> None:
        await asyncio.to_thread(self.book.release, job_id, worker)

    async def release_all(self, worker: str) -> int:
        return await asyncio.to_thread(self.book.release_all, worker)

    async def claim_due_polls(self, worker: str, now: datetime, lease_s: float) -> list[Job]:
        return await asyncio.to_thread(self.book.claim_due_polls, worker, now, lease_s)

    async def schedule_poll(self, job_id: str, next_poll_at: datetime) -> None:
        await asyncio.to_thread(self.book.schedule_poll, job_id, next_poll_at)

    # transitions
    async def mark_submitted(self, job_id: str, task: TaskRef, first_poll_at: datetime | None = None) -> bool:
        return await asyncio.to_thread(self.book.mark_submitted, job_id, task, first_poll_at)

    async def wait_to_retry(self, job_id: str, retry_at: datetime, waiting_for: str, error: str) -> bool:
        return await asyncio.to_thread(self.book.wait_to_retry, job_id, retry_at, waiting_for, error)

    async def mark_running(self, job_id: str, receipt: Receipt | None = None) -> bool:
        return await asyncio.to_thread(self.book.mark_running, job_id, receipt)

    async def fail(
        self, job_id: str, error: str, receipt: Receipt | None = None, steps: Sequence[tuple[str, str]] = ()
    ) -> bool:
        return await asyncio.to_thread(self.book.fail, job_id, error, receipt, steps)

    async def cancel(self, job_id: str, receipt: Receipt | None = None) -> bool:
        return await asyncio.to_thread(self.book.cancel, job_id, receipt)

    async def complete(self, job_id: str, image_path: str, download: str = "", receipt: Receipt | None = None) -> bool:
        return await asyncio.to_thread(self.book.complete, job_id, image_path, download, receipt)

    # the timeline and the row's live detail
    async def record(
        self, job_id: str, step: str, detail: str = "", *, announce: bool = True, **log_fields: object
    ) -> None:
        await asyncio.to_thread(lambda: self.book.record(job_id, step, detail, announce=announce, **log_fields))

    async def receive(self, job_id: str, receipt: Receipt) -> None:
        await asyncio.to_thread(self.book.receive, job_id, receipt)

    async def note_progress(self, job_id: str, progress: str) -> bool:
        return await asyncio.to_thread(self.book.note_progress, job_id, progress)
