"""Fallback polling: ask the provider about jobs whose webhook has not come (yet).

Callbacks rarely reach a laptop, so every submitted job has a poll schedule in the
database (`Job.next_poll_at`, backing off up to a cap). A task unfinished after its
provider's longest run (`Provider.max_run_s`) is given up: cancelled at the provider
where its API allows, and the job fails with a timeout error. A
restart resumes it, and a claim with a lease keeps several workers from polling one
job at once. What a poll learns goes through `Pipeline.apply`, the step a webhook takes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

import httpx

from core.contract import ProviderError, ProviderRegistry
from core.jobs.async_book import AsyncJobBook
from core.jobs.pipeline import Pipeline, provider_error, span, task_of
from core.logs import get_logger, log_job
from models.tables import Job, utcnow

log = get_logger("polling")


@dataclass(frozen=True)
class PollPolicy:
    """`start_s`, then x1.5 per poll up to `cap_s` (values from Settings)."""

    start_s: float
    cap_s: float

    def next_delay(self, attempts: int) -> float:
        return min(self.cap_s, self.start_s * 1.5**attempts)


class Poller:
    def __init__(self, jobs: AsyncJobBook, registry: ProviderRegistry, pipeline: Pipeline, policy: PollPolicy) -> None:
        self.jobs = jobs
        self.registry = registry
        self.pipeline = pipeline
        self.policy = policy

    async def poll_due(self) -> int:
        """Claim and poll every job whose fallback poll is due; returns how many were polled.

        Claimed, so several worker processes never poll one job at once.
        """
        worker, lease_s = self.pipeline.worker_id, self.pipeline.lease_s
        due = await self.jobs.claim_due_polls(worker, utcnow(), lease_s)
        await asyncio.gather(*(self._poll_claimed(job) for job in due))
        return len(due)

    async def _poll_claimed(self, job: Job) -> None:
        try:
            await self._poll(job)
        finally:
            await self.jobs.release(job.id, self.pipeline.worker_id)

    async def _poll(self, job: Job) -> None:
        task = task_of(job)
        assert task is not None and job.submitted_at is not None
        provider = self.registry.get(job.provider)
        waited = (utcnow() - job.submitted_at).total_seconds()
        # One poll interval past the provider's own timeout: a provider that times a task out
        # itself says so at the next poll, which is a clearer end than ours.
        if waited > provider.max_run_s + self.policy.cap_s:
            outcome = await self.pipeline.cancel_at_provider(job, task)
            message = (
                f"No result from {provider.label} after {span(waited)}, longer than its tasks run "
                f"({span(provider.max_run_s)}); gave up waiting (timeout)"
            )
            log_job(log, "poll.timeout", job, waited_s=round(waited), provider_cancel=outcome)
            await self.jobs.fail(job.id, message, None, [("poll.gave_up", outcome)])
            return
        attempt = job.poll_attempts + 1
        next_at = utcnow() + timedelta(seconds=self.policy.next_delay(attempt))
        await self.jobs.schedule_poll(job.id, next_at)
        try:
            update = await provider.query(task)
        except (ProviderError, httpx.HTTPError) as exc:
            error = provider_error(provider.label, exc)
            await self.jobs.record(
                job.id,
                "poll.failed",
                f"attempt {attempt}: {error.message}",
                error=error.message,
                attempt=attempt,
                will_retry=error.retryable,
            )
            if not error.retryable:
                await self.jobs.fail(job.id, error.message)
            return
        await self.jobs.record(
            job.id,
            "poll.answered",
            f"attempt {attempt}: {update.status.value}",
            status=update.status.value,
            attempt=attempt,
        )
        await self.pipeline.apply(job.id, update)
