"""The webhook gate: the security boundary every provider callback passes, in this order.

    known job (404) -> the job's own token in the URL (403) -> the provider's signature (its
    status, usually 401) -> the job's task (409) -> a delivery already applied, or one for a
    job already finished: 200, nothing changes -> confirmed with the provider when unsigned
    -> applied; a result we refuse changes nothing (422)

An already-applied delivery gets a 2xx, not a 4xx: Replicate resends on any 4xx, Fal.ai
up to 10 times over two hours, and so do Standard Webhooks senders; an answer that says
"applied" is the one that stops them. Forged or malformed deliveries keep their 4xx.

A callback is untrusted input: whatever it says, it can only move its own job forward
through `Pipeline.apply`, the same step a poll takes. Every refusal is a log line, and a
timeline step when the job is known.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from core.contract import ProviderError, ProviderRegistry, TaskRef, WebhookRejected
from core.errors import NotFound
from core.jobs.async_book import AsyncJobBook
from core.jobs.book import Receipt
from core.jobs.pipeline import Pipeline
from core.logs import get_logger, log_job, log_step
from core.media.store import ImageRejected
from models.tables import utcnow

log = get_logger("webhooks")


@dataclass(frozen=True)
class WebhookOutcome:
    """What to answer the provider."""

    status_code: int
    message: str


class WebhookGate:
    def __init__(self, jobs: AsyncJobBook, registry: ProviderRegistry, pipeline: Pipeline) -> None:
        self.jobs = jobs
        self.registry = registry
        self.pipeline = pipeline

    async def receive(
        self, provider_name: str, job_id: str, token: str, headers: Mapping[str, str], body: bytes
    ) -> WebhookOutcome:
        """Verify a callback and apply it; the outcome says what to answer the provider."""
        try:
            job = await self.jobs.get(job_id)
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
            await self.jobs.record(job.id, "webhook.rejected", exc.reason, reason=exc.reason)
            return WebhookOutcome(exc.status_code, exc.reason)
        if job.provider_task_id is not None and update.task_id != job.provider_task_id:
            log_job(log, "webhook.rejected", job, reason="task id mismatch")
            return WebhookOutcome(409, "task id does not belong to this job")
        fingerprint = _fingerprint(provider_name, job_id, update.delivery_id, body) if update.delivery_id else ""
        replayed: bool = bool(fingerprint) and await self.jobs.delivery_seen(fingerprint)
        if replayed:
            await self.jobs.record(job.id, "webhook.duplicate", "already applied; nothing changed", reason="replay")
            return WebhookOutcome(200, "already applied (a replay of this delivery); nothing changed")
        if job.status.is_terminal:
            # Nothing a callback says moves a finished job: no need to ask the provider first.
            receipt = Receipt(f"{update.status.value}; the job had already finished", utcnow(), fingerprint)
            await self.jobs.receive(job_id, receipt)
            log_job(log, "webhook.duplicate", job, status=update.status.value, reason="job already finished")
            return WebhookOutcome(200, f"the job is already {job.status.value}; nothing changed")
        verification = (
            "unsigned: confirming with the provider"
            if not update.verified
            else "signature verified; result confirmed with the provider"
            if update.confirm_with_query
            else "signature verified"
        )
        # Logged now, written to the timeline with the change it brings (one transaction).
        receipt = Receipt(f"{update.status.value}; {verification}", utcnow(), fingerprint)
        log_job(
            log, "webhook.received", job, status=update.status.value, task_id=update.task_id, verified=update.verified
        )
        if not update.verified or update.confirm_with_query:
            try:
                update = await provider.query(TaskRef(update.task_id, job.provider_handle))
            except (ProviderError, httpx.HTTPError) as exc:
                # The poller will ask again; the provider may retry its delivery too.
                log_job(log, "webhook.unconfirmed", job, error=str(exc))
                await self.jobs.receive(job_id, receipt.unapplied())
                return WebhookOutcome(202, "accepted; will confirm by polling")
            log_job(log, "webhook.confirmed", job, status=update.status.value)
        try:
            await self.pipeline.apply(job_id, update, receipt)
        except ImageRejected as exc:
            # Nothing changes: fallback polling asks the provider itself and settles the job.
            await self.jobs.receive(job_id, receipt.unapplied())
            await self.jobs.record(job.id, "webhook.rejected", f"result refused: {exc}", reason=str(exc))
            if exc.retryable:  # the provider may deliver again; the poller asks meanwhile
                return WebhookOutcome(503, f"result not downloaded: {exc}")
            return WebhookOutcome(422, f"result refused: {exc}")
        return WebhookOutcome(200, "ok")


def _fingerprint(provider: str, job_id: str, delivery_id: str, body: bytes) -> str:
    """One signed delivery, whatever the provider calls its id: the same one twice is a replay."""
    return hashlib.sha256(f"{provider}\n{job_id}\n{delivery_id}\n".encode() + body).hexdigest()
