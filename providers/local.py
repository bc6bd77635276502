"""The built-in offline provider: real images, the same path a remote provider takes.

`submit` returns a task id at once; the work runs in the background with a
realistic delay; the result is published at a URL and announced by a signed HTTP
callback to the app's webhook route, exactly like KIE.ai or Fal.ai would.
A prompt containing `[fail]` fails on purpose (tests and demos of the error path).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from models.logs import get_logger, log_step
from providers.base import (
    JobStatus,
    ModelInfo,
    NodeKind,
    ProviderError,
    SubmitRequest,
    TaskRef,
    TaskUpdate,
    WebhookRejected,
)
from providers.local_render import render_edit, render_text_to_image

log = get_logger("providers.local")

FAIL_FLAG = "[fail]"
SIGNATURE_HEADER = "x-local-signature"
TIMESTAMP_HEADER = "x-local-timestamp"
MAX_SKEW_S = 300
OUTPUTS_ROUTE = "/api/providers/local/outputs"


def sign(secret: str, task_id: str, timestamp: str) -> str:
    return hmac.new(secret.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).hexdigest()


class LocalProvider:
    name = "local"
    models: Sequence[ModelInfo] = (
        ModelInfo(id="local/sketch", provider="local", kind=NodeKind.TEXT_TO_IMAGE),
        ModelInfo(id="local/sketch-edit", provider="local", kind=NodeKind.IMAGE_EDIT, max_input_images=4),
    )

    def __init__(
        self,
        *,
        outputs_dir: Path,
        base_url: str,
        http: httpx.AsyncClient,
        delay_s: float = 2.0,
        secret: str | None = None,
    ) -> None:
        self.outputs_dir = outputs_dir
        self.outputs_dir.mkdir(parents=True, exist_ok=True)
        self.base_url = base_url
        self.http = http
        self.delay_s = delay_s
        self.secret = secret or secrets.token_hex(32)
        self._state: dict[str, TaskUpdate] = {}
        self._work: dict[str, asyncio.Task[None]] = {}
        self.routes: Sequence[BaseRoute] = (Route(OUTPUTS_ROUTE + "/{name}", self._serve_output),)

    # Provider protocol --------------------------------------------------
    async def submit(self, request: SubmitRequest) -> TaskRef:
        info = next((m for m in self.models if m.id == request.model), None)
        if info is None:
            raise ProviderError(f"The local provider has no model {request.model!r}")
        if info.kind == NodeKind.IMAGE_EDIT and not request.input_image_urls:
            raise ProviderError("Image edit needs at least one input image")
        task_id = f"local-{uuid.uuid4().hex[:16]}"
        self._state[task_id] = TaskUpdate(task_id, JobStatus.SUBMITTED)
        self._work[task_id] = asyncio.create_task(self._run(task_id, request))
        return TaskRef(task_id)

    async def query(self, task: TaskRef) -> TaskUpdate:
        task_id = task.task_id
        state = self._state.get(task_id)
        if state is None:
            lost = "The local provider restarted before finishing this task; retry it"
            return TaskUpdate(task_id, JobStatus.FAILED, error=lost)
        return state

    async def cancel(self, task: TaskRef) -> None:
        work = self._work.pop(task.task_id, None)
        if work is not None:
            work.cancel()
        self._state[task.task_id] = TaskUpdate(task.task_id, JobStatus.CANCELLED)

    async def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> TaskUpdate:
        try:
            payload = json.loads(body)
            task_id = str(payload["task_id"])
            status = JobStatus(payload["status"])
        except (ValueError, KeyError, TypeError) as exc:
            raise WebhookRejected(f"Malformed local callback: {exc}") from exc
        timestamp = headers.get(TIMESTAMP_HEADER, "")
        signature = headers.get(SIGNATURE_HEADER, "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_SKEW_S:
            raise WebhookRejected("Missing or stale callback timestamp", 401)
        if not hmac.compare_digest(sign(self.secret, task_id, timestamp), signature):
            raise WebhookRejected("Bad callback signature", 401)
        urls = payload.get("result_urls") or []
        return TaskUpdate(task_id, status, tuple(str(u) for u in urls), payload.get("error"), delivery_id=signature)

    # The "remote" side --------------------------------------------------
    async def _run(self, task_id: str, request: SubmitRequest) -> None:
        try:
            await asyncio.sleep(self.delay_s / 2)
            await self._report(request, TaskUpdate(task_id, JobStatus.RUNNING))
            await asyncio.sleep(self.delay_s / 2)
            if FAIL_FLAG in request.prompt.lower():
                refusal = f"The local provider refused the prompt: it contains {FAIL_FLAG}"
                update = TaskUpdate(task_id, JobStatus.FAILED, error=refusal)
            else:
                image = await self._render(request)
                name = f"{task_id}.png"
                await asyncio.to_thread((self.outputs_dir / name).write_bytes, image)
                update = TaskUpdate(task_id, JobStatus.COMPLETED, (f"{self.base_url}{OUTPUTS_ROUTE}/{name}",))
        except asyncio.CancelledError:
            return
        except Exception as exc:  # the provider's own crash becomes the task's error
            log.exception("local render failed", extra={"job_id": request.job_id, "step": "provider.error"})
            update = TaskUpdate(task_id, JobStatus.FAILED, error=f"The local provider crashed: {exc}")
        finally:
            self._work.pop(task_id, None)
        await self._report(request, update)

    async def _render(self, request: SubmitRequest) -> bytes:
        if not request.input_image_urls:
            return await asyncio.to_thread(render_text_to_image, request.prompt, request.aspect_ratio, request.seed)
        inputs = []
        for url in request.input_image_urls:
            response = await self.http.get(url)
            response.raise_for_status()
            inputs.append(response.content)
        return await asyncio.to_thread(render_edit, request.prompt, request.aspect_ratio, inputs, request.seed)

    async def _report(self, request: SubmitRequest, update: TaskUpdate) -> None:
        """Record the task's state and deliver the callback, retrying like real providers do."""
        self._state[update.task_id] = update
        body: dict[str, Any] = {
            "task_id": update.task_id,
            "status": update.status.value,
            "result_urls": list(update.result_urls),
            "error": update.error,
        }
        for attempt in range(5):
            timestamp = str(int(time.time()))
            headers = {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(self.secret, update.task_id, timestamp)}
            try:
                response = await self.http.post(request.callback_url, json=body, headers=headers)
                if response.status_code < 500:
                    log_step(
                        log,
                        "provider.callback_sent",
                        job_id=request.job_id,
                        task_id=update.task_id,
                        status=update.status.value,
                        http_status=response.status_code,
                    )
                    return
            except httpx.HTTPError as exc:
                log_step(log, "provider.callback_failed", job_id=request.job_id, error=type(exc).__name__)
            await asyncio.sleep(0.5 * 2**attempt)

    async def _serve_output(self, request: Request) -> Response:
        name = request.path_params["name"]
        path = self.outputs_dir / name
        if "/" in name or not name.endswith(".png") or not path.is_file():
            return Response("not found", status_code=404)
        return FileResponse(path, media_type="image/png")
