"""The built-in offline provider: real images, the same path a remote provider takes.

`submit` returns a task id at once; the work runs in the background with a
realistic delay; the result is published at a URL and announced by a signed HTTP
callback to the app's webhook route, exactly like KIE.ai or Fal.ai would. While it
runs it reports, as a real sampler does, each step's percent and a small preview (noise
clearing into the picture) to the app's progress board, in this process: a preview per
step is no callback's business.
A prompt containing `[fail]` fails on purpose (tests and demos of the error path).

The tasks live in the database (`LocalTask`), not in this process: with several
worker processes a status query or an output request may reach any of them, and a
worker may die mid-render. The worker rendering a task holds a lease on it; a query
that finds an unfinished task whose lease ran out takes it over and renders it again.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import secrets
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import or_, update
from sqlalchemy.orm import defer
from sqlmodel import col
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from core.contract import (
    JobStatus,
    ModelInfo,
    NodeKind,
    ProgressSink,
    ProviderError,
    SubmitLimit,
    SubmitRequest,
    TaskProgress,
    TaskRef,
    TaskUpdate,
    WebhookRejected,
    require_fresh_timestamp,
    utcnow,
)
from core.db import WORKER_ID, Database
from core.logs import get_logger, log_step
from core.retries import RetryPolicy
from providers.local_render import SamplerPreviews, photo_weight, render_edit, render_text_to_image
from providers.local_tasks import LocalTask

log = get_logger("providers.local")

FAIL_FLAG = "[fail]"
SIGNATURE_HEADER = "x-local-signature"
TIMESTAMP_HEADER = "x-local-timestamp"
OUTPUTS_ROUTE = "/api/providers/local/outputs"
#: How long a render's lease outlives its expected duration before another worker may take it.
LEASE_MARGIN_S = 10.0
UNFINISHED = (JobStatus.SUBMITTED.value, JobStatus.RUNNING.value)
#: Callbacks are delivered again when the app is unreachable or answers 5xx, like real providers do.
CALLBACK_RETRIES = RetryPolicy(attempts=5, base_s=0.5, cap_s=8.0)
#: A task waits this share of its delay before it starts, and runs the rest.
WAITING_SHARE = 0.25
#: The sampler's steps over the run, each reported with its percent and preview: at least this
#: many, and at least 4 a second (what the progress board pushes at most) over a long run.
MIN_STEPS = 12
STEPS_PER_S = 4


def sign(secret: str, task_id: str, timestamp: str) -> str:
    return hmac.new(secret.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).hexdigest()


class LocalProvider:
    name = "local"
    label = "the local provider"
    can_cancel = True
    models: Sequence[ModelInfo] = (
        ModelInfo(id="local/sketch", provider="local", kind=NodeKind.TEXT_TO_IMAGE, takes_seed=True),
        ModelInfo(
            id="local/sketch-edit", provider="local", kind=NodeKind.IMAGE_EDIT, max_input_images=4, takes_seed=True
        ),
    )
    #: Renders on this machine: nothing to ration, and it reaches the app at its own address.
    submit_limit: SubmitLimit | None = None
    runs_here = True

    def __init__(
        self,
        *,
        db: Database,
        own_url: str,
        http: httpx.AsyncClient,
        delay_s: float = 2.0,
        secret: str | None = None,
        photo_weight: bool = False,
        progress: ProgressSink | None = None,
    ) -> None:
        self.db = db
        #: Hears each step of the renders running in this process (None: nobody listens).
        self.progress = progress
        #: Where its results are published: the app's own loopback address (`Settings.own_url`).
        self.own_url = own_url
        self.http = http
        self.delay_s = delay_s
        self.photo_weight = photo_weight
        #: A render, and another one after its worker died (taken over when its lease ran out).
        self.max_run_s = 2 * (delay_s + LEASE_MARGIN_S)
        self.secret = secret or secrets.token_hex(32)
        self._work: dict[str, asyncio.Task[None]] = {}
        self.routes: Sequence[BaseRoute] = (Route(OUTPUTS_ROUTE + "/{name}", self._serve_output),)

    # Provider protocol --------------------------------------------------
    async def submit(self, request: SubmitRequest) -> TaskRef:
        info = next((m for m in self.models if m.id == request.model), None)
        if info is None:
            raise ProviderError(f"The local provider has no model {request.model!r}")
        if info.kind == NodeKind.IMAGE_EDIT and not request.input_image_urls:
            raise ProviderError("Image edit needs at least one input image")
        task = LocalTask(
            id=f"local-{uuid.uuid4().hex[:16]}",
            job_id=request.job_id,
            request=asdict(request),
            claimed_by=WORKER_ID,
            lease_until=utcnow() + self._lease,
        )
        await asyncio.to_thread(self._insert, task)
        self._start(task.id, request)
        return TaskRef(task.id)

    async def query(self, task: TaskRef) -> TaskUpdate:
        row = await asyncio.to_thread(self._load, task.task_id)
        if row is None:
            lost = "The local provider has no record of this task; retry it"
            return TaskUpdate(task.task_id, JobStatus.FAILED, error=lost)
        if row.status in UNFINISHED and await asyncio.to_thread(self._take_over, row.id):
            log_step(log, "provider.task_taken_over", job_id=row.job_id, task_id=row.id, worker=WORKER_ID)
            self._start(row.id, SubmitRequest(**_request_fields(row.request)))
        return _update_of(row)

    async def cancel(self, task: TaskRef) -> None:
        work = self._work.pop(task.task_id, None)
        if work is not None:
            work.cancel()
        await asyncio.to_thread(self._finish, TaskUpdate(task.task_id, JobStatus.CANCELLED))

    async def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> TaskUpdate:
        try:
            payload = json.loads(body)
            task_id = str(payload["task_id"])
            status = JobStatus(payload["status"])
        except (ValueError, KeyError, TypeError) as exc:
            raise WebhookRejected(f"Malformed local callback: {exc}") from exc
        timestamp = headers.get(TIMESTAMP_HEADER, "")
        signature = headers.get(SIGNATURE_HEADER, "")
        require_fresh_timestamp(timestamp, time.time(), "local provider")
        if not hmac.compare_digest(sign(self.secret, task_id, timestamp), signature):
            raise WebhookRejected("Bad callback signature", 401)
        urls = payload.get("result_urls") or []
        return TaskUpdate(task_id, status, tuple(str(u) for u in urls), payload.get("error"), delivery_id=signature)

    # The "remote" side --------------------------------------------------
    @property
    def _lease(self) -> timedelta:
        return timedelta(seconds=self.delay_s + LEASE_MARGIN_S)

    def _start(self, task_id: str, request: SubmitRequest) -> None:
        self._work[task_id] = asyncio.create_task(self._run(task_id, request))

    async def _run(self, task_id: str, request: SubmitRequest) -> None:
        try:
            await asyncio.sleep(self.delay_s * WAITING_SHARE)
            if not await asyncio.to_thread(self._mark_running, task_id):
                return  # cancelled meanwhile, or another worker took it over
            await self._report(request, TaskUpdate(task_id, JobStatus.RUNNING))
            image = None
            if FAIL_FLAG in request.prompt.lower():
                await asyncio.sleep(self.delay_s * (1 - WAITING_SHARE))
                refusal = f"The local provider refused the prompt: it contains {FAIL_FLAG}"
                update = TaskUpdate(task_id, JobStatus.FAILED, error=refusal)
            else:
                # Drawn first, so each step's preview clears towards the picture the result will be.
                image = await self._render(request)
                await self._steps(request.job_id, image)
                url = f"{self.own_url}{OUTPUTS_ROUTE}/{task_id}.png?sig={self._output_signature(task_id)}"
                update = TaskUpdate(task_id, JobStatus.COMPLETED, (url,))
        except asyncio.CancelledError:
            return
        except Exception as exc:  # the provider's own crash becomes the task's error
            log.exception("local render failed", extra={"job_id": request.job_id, "step": "provider.error"})
            update, image = TaskUpdate(task_id, JobStatus.FAILED, error=f"The local provider crashed: {exc}"), None
        finally:
            self._work.pop(task_id, None)
        if await asyncio.to_thread(self._finish, update, image):
            await self._report(request, update)

    async def _steps(self, job_id: str, image: bytes) -> None:
        """The run's time in steps, each reporting its percent and preview."""
        run_s = self.delay_s * (1 - WAITING_SHARE)
        steps = max(MIN_STEPS, math.ceil(run_s * STEPS_PER_S))
        previews = await asyncio.to_thread(SamplerPreviews, image) if self.progress is not None else None
        for step in range(1, steps + 1):
            await asyncio.sleep(run_s / steps)
            if self.progress is not None and previews is not None:
                preview = await asyncio.to_thread(previews.at, step / steps)
                self.progress(job_id, JobStatus.RUNNING, TaskProgress(percent=100 * step / steps, preview=preview))

    async def _render(self, request: SubmitRequest) -> bytes:
        inputs = []
        for url in request.input_image_urls:
            response = await self.http.get(url)
            response.raise_for_status()
            inputs.append(response.content)
        return await asyncio.to_thread(self._draw, request.prompt, request.aspect_ratio, inputs, request.seed or 0)

    def _draw(self, prompt: str, aspect_ratio: str, inputs: list[bytes], seed: int = 0) -> bytes:
        if inputs:
            image = render_edit(prompt, aspect_ratio, inputs, seed)
        else:
            image = render_text_to_image(prompt, aspect_ratio, seed)
        return photo_weight(image, prompt) if self.photo_weight else image

    async def _report(self, request: SubmitRequest, update: TaskUpdate) -> None:
        """Deliver the callback, retrying like real providers do."""
        body: dict[str, Any] = {
            "task_id": update.task_id,
            "status": update.status.value,
            "result_urls": list(update.result_urls),
            "error": update.error,
        }
        try:
            async for attempt in CALLBACK_RETRIES.attempts_on(httpx.HTTPError):
                with attempt:
                    timestamp = str(int(time.time()))
                    headers = {
                        TIMESTAMP_HEADER: timestamp,
                        SIGNATURE_HEADER: sign(self.secret, update.task_id, timestamp),
                    }
                    response = await self.http.post(request.callback_url, json=body, headers=headers)
                    if response.status_code >= 500:  # the app's trouble, not a refusal: deliver again
                        response.raise_for_status()
        except httpx.HTTPError as exc:
            # Nothing is lost: the app's fallback poll asks for the task's state.
            log_step(log, "provider.callback_failed", job_id=request.job_id, error=type(exc).__name__)
            return
        log_step(
            log,
            "provider.callback_sent",
            job_id=request.job_id,
            task_id=update.task_id,
            status=update.status.value,
            http_status=response.status_code,
        )

    def _output_signature(self, task_id: str) -> str:
        return hmac.new(self.secret.encode(), f"output {task_id}".encode(), hashlib.sha256).hexdigest()

    async def _serve_output(self, request: Request) -> Response:
        """A result, only at the signed URL the callback gave (like a provider's CDN link)."""
        name = request.path_params["name"]
        task_id = name.removesuffix(".png")
        signed = hmac.compare_digest(self._output_signature(task_id), request.query_params.get("sig", ""))
        row = (
            await asyncio.to_thread(self._load, task_id, with_image=True) if signed and name.endswith(".png") else None
        )
        if row is None or row.image is None:
            return Response("not found", status_code=404)
        return Response(row.image, media_type="image/png")

    # The task table ------------------------------------------------------
    def _insert(self, task: LocalTask) -> None:
        with self.db.session() as session:
            session.add(task)

    def _load(self, task_id: str, *, with_image: bool = False) -> LocalTask | None:
        """The task; its image only when asked (a status query need not carry it)."""
        options = [] if with_image else [defer(LocalTask.image)]  # type: ignore[arg-type]
        with self.db.session() as session:
            return session.get(LocalTask, task_id, options=options)

    def _take_over(self, task_id: str) -> bool:
        """Claim an unfinished task whose worker's lease ran out (it died)."""
        now = utcnow()
        lease_over = or_(col(LocalTask.lease_until).is_(None), col(LocalTask.lease_until) <= now)
        return self._update(
            task_id,
            [col(LocalTask.status).in_(UNFINISHED), lease_over],
            status=JobStatus.SUBMITTED.value,
            claimed_by=WORKER_ID,
            lease_until=now + self._lease,
        )

    def _mark_running(self, task_id: str) -> bool:
        return self._update(
            task_id,
            [col(LocalTask.status).in_(UNFINISHED), col(LocalTask.claimed_by) == WORKER_ID],
            status=JobStatus.RUNNING.value,
            lease_until=utcnow() + self._lease,
        )

    def _finish(self, update: TaskUpdate, image: bytes | None = None) -> bool:
        """Record a final state unless the task has one already (a cancel wins over a late render)."""
        return self._update(
            update.task_id,
            [col(LocalTask.status).in_(UNFINISHED)],
            status=update.status.value,
            error=update.error,
            result_url=update.result_urls[0] if update.result_urls else None,
            image=image,
            claimed_by=None,
            lease_until=None,
        )

    def _update(self, task_id: str, conditions: list[Any], **values: Any) -> bool:
        with self.db.session() as session:
            result = session.connection().execute(
                update(LocalTask).where(col(LocalTask.id) == task_id, *conditions).values(**values)
            )
            return bool(result.rowcount)


def _update_of(row: LocalTask) -> TaskUpdate:
    urls = (row.result_url,) if row.result_url else ()
    return TaskUpdate(row.id, JobStatus(row.status), urls, row.error)


def _request_fields(stored: dict[str, Any]) -> dict[str, Any]:
    """A `SubmitRequest` from its JSON form (tuples came back as lists; fields it no longer has dropped)."""
    known = {f.name for f in fields(SubmitRequest)}
    kept = {name: value for name, value in stored.items() if name in known}
    return {**kept, "input_image_urls": tuple(stored.get("input_image_urls", ()))}
