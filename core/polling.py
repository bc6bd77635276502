"""Fallback polling: ask the provider about jobs whose webhook has not come (yet).

Callbacks rarely reach a laptop, so every submitted job has a poll schedule in the
database (`Job.next_poll_at`, backing off up to a cap, failing after a timeout). A
restart resumes it, and a claim with a lease keeps several workers from polling one
job at once. What a poll learns goes through `Pipeline.apply`, the step a webhook takes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

import httpx

from core.contract import ProviderError, ProviderRegistry
from core.jobs import JobBook
from core.logs import get_logger, log_job
from core.pipeline import Pipeline, provider_error, task_of
from models.tables import Job, utcnow

log = get_logger("polling")


@dataclass(frozen=True)
class PollPolicy:
    """`start_s`, then x1.5 per poll up to `cap_s`; give up after `timeout_s` (values from Settings)."""

    start_s: float
    cap_s: float
    timeout_s: float

    def next_delay(self, attempts: int) -> float:
        return min(self.cap_s, self.start_s * 1.5**attempts)


class Poller:
    def __init__(self, jobs: JobBook, registry: ProviderRegistry, pipeline: Pipeline, policy: PollPolicy) -> None:
        self.jobs = jobs
        self.registry = registry
        self.pipeline = pipeline
        self.policy = policy

    async def poll_due(self) -> int:
        """Claim and poll every job whose fallback poll is due; returns how many were polled.

        Claimed, so several worker processes never poll one job at once.
        """
        worker, lease_s = self.pipeline.worker_id, self.pipeline.lease_s
        due = await asyncio.to_thread(self.jobs.claim_due_polls, worker, utcnow(), lease_s)
        await asyncio.gather(*(self._poll_claimed(job) for job in due))
        return len(due)

    async def _poll_claimed(self, job: Job) -> None:
        try:
            await self._poll(job)
        finally:
            await asyncio.to_thread(self.jobs.release, job.id, self.pipeline.worker_id)

    async def _poll(self, job: Job) -> None:
        task = task_of(job)
        assert task is not None and job.submitted_at is not None
        waited = (utcnow() - job.submitted_at).total_seconds()
        if waited > self.policy.timeout_s:
            message = f"No result from {job.provider} after {waited / 60:.0f} min; gave up waiting (timeout)"
            log_job(log, "poll.timeout", job)
            await asyncio.to_thread(self.jobs.fail, job.id, message)
            return
        attempt = job.poll_attempts + 1
        next_at = utcnow() + timedelta(seconds=self.policy.next_delay(attempt))
        await asyncio.to_thread(self.jobs.schedule_poll, job.id, next_at)
        try:
            update = await self.registry.get(job.provider).query(task)
        except (ProviderError, httpx.HTTPError) as exc:
            error = provider_error(job.provider, exc)
            await asyncio.to_thread(
                self.jobs.record_step,
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
        await asyncio.to_thread(
            self.jobs.record_step,
            job,
            "poll.answered",
            f"attempt {attempt}: {update.status.value}",
            status=update.status.value,
            attempt=attempt,
        )
        await self.pipeline.apply(job.id, update)
