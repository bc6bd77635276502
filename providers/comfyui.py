"""ComfyUI (`COMFYUI_URL`): the checkpoints of a ComfyUI server, people's own GPU, as models.

Contract (ComfyUI's `server.py` and its API docs): `GET /object_info/CheckpointLoaderSimple`
lists the checkpoints (`input.required.ckpt_name`), each offered as `comfyui/<checkpoint>` for
text to image and `comfyui/<checkpoint>/edit` for image to image. A job is an API-format
workflow (`POST /prompt` with our `client_id`): checkpoint loader, two text encoders, an empty
latent at the node's ratio (or, for an edit, the first input sent with `POST /upload/image`,
`LoadImage` and `VAEEncode` with a denoise below 1), KSampler, VAE decode, save. ComfyUI
answers 400 with `error` and `node_errors` for a workflow it refuses. Results are in
`GET /history/{prompt_id}` and downloaded from `GET /view`.

Live progress comes over ComfyUI's websocket (`/ws?clientId=`), where it sends the messages of
the prompts our client queued: `execution_start`, `progress {value, max}` (a sampler's steps),
`execution_success` / `execution_error` / `execution_interrupted`, `status` (whenever the queue
changes: then we ask `GET /queue` for our prompts' places), and binary preview frames (a 4-byte
event type, 1 for a preview, a 4-byte image format, then the JPEG or PNG), which carry no prompt
id: they belong to the prompt executing. The socket is open while this process has prompts at
ComfyUI. ComfyUI has no webhooks, so when a prompt ends the provider reports it to the app's
webhook route itself, signed like the local provider's callbacks; the fallback poll reads
`/history` too, so a prompt whose worker died still completes. `Cancel` deletes the prompt
from ComfyUI's queue and interrupts it only if it is the one running (`POST /interrupt` with
its `prompt_id`, which servers since 2025 check themselves).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import httpx
from starlette.routing import BaseRoute

from core.contract import (
    UNDOCUMENTED_MAX_RUN_S,
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
)
from core.logs import get_logger, log_step
from core.retries import RetryPolicy

log = get_logger("providers.comfyui")

PREFIX = "comfyui/"
EDIT_SUFFIX = "/edit"
SIGNATURE_HEADER = "x-comfyui-signature"
TIMESTAMP_HEADER = "x-comfyui-timestamp"
#: ComfyUI's binary websocket event for a preview image (`BinaryEventTypes.PREVIEW_IMAGE`).
PREVIEW_IMAGE = 1
#: The long side of what the built-in workflow draws (SDXL's native size), in multiples of 64.
LONG_SIDE = 1024
STEPS = 20
#: How much of an edit's input the sampler may change (image to image).
EDIT_DENOISE = 0.6
#: Reports of a finished prompt to the app's webhook route are retried like the local provider's.
CALLBACK_RETRIES = RetryPolicy(attempts=5, base_s=0.5, cap_s=8.0)
#: How long to wait for the server when listing its checkpoints at start.
LIST_TIMEOUT_S = 3.0


def size_for(aspect_ratio: str) -> tuple[int, int]:
    """`"16:9"` -> (1024, 576): the long side `LONG_SIDE`, both multiples of 64."""
    w, h = (float(x) for x in aspect_ratio.split(":"))
    scale = LONG_SIDE / max(w, h)
    return max(64, round(w * scale / 64) * 64), max(64, round(h * scale / 64) * 64)


def checkpoints_of(object_info: Any) -> list[str]:
    """`ckpt_name`'s choices: `[[names...], {...}]` (older servers) or `["COMBO", {"options": [...]}]`."""
    try:
        spec = object_info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"]
    except (KeyError, TypeError):
        return []
    choices = spec[0] if isinstance(spec, list) and spec else None
    if choices == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):
        choices = spec[1].get("options")
    return [str(name) for name in choices] if isinstance(choices, list) else []


def workflow(checkpoint: str, prompt: str, aspect_ratio: str, seed: int, input_name: str | None) -> dict[str, Any]:
    """The built-in API-format workflow: text to image, or image to image from an uploaded input."""
    graph: dict[str, Any] = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": prompt, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
    }
    if input_name is None:
        width, height = size_for(aspect_ratio)
        graph["5"] = {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": height, "batch_size": 1}}
        latent, denoise = ["5", 0], 1.0
    else:
        graph["10"] = {"class_type": "LoadImage", "inputs": {"image": input_name}}
        graph["11"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["4", 2]}}
        latent, denoise = ["11", 0], EDIT_DENOISE
    graph["3"] = {
        "class_type": "KSampler",
        "inputs": {
            "seed": seed,
            "steps": STEPS,
            "cfg": 7.0,
            "sampler_name": "euler",
            "scheduler": "normal",
            "denoise": denoise,
            "model": ["4", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": latent,
        },
    }
    graph["8"] = {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}}
    graph["9"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "canvas", "images": ["8", 0]}}
    return graph


def refusal(body: Any) -> str:
    """A 400's `error` and `node_errors` as one readable sentence."""
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else str(error or "the workflow was refused")
    details = []
    node_errors = body.get("node_errors") if isinstance(body, dict) else None
    for node_id, node in (node_errors or {}).items() if isinstance(node_errors, dict) else ():
        for item in node.get("errors", []) if isinstance(node, dict) else ():
            detail = f": {item['details']}" if item.get("details") else ""
            details.append(f"{node.get('class_type', 'node')} #{node_id}: {item.get('message', 'invalid')}{detail}")
    return f"ComfyUI refused the workflow ({message})" + (f": {'; '.join(details)}" if details else "")


def sign(secret: str, prompt_id: str, timestamp: str) -> str:
    return hmac.new(secret.encode(), f"{prompt_id}.{timestamp}".encode(), hashlib.sha256).hexdigest()


@dataclass
class _Prompt:
    """A prompt this process queued: whose job it runs and where to report its end."""

    job_id: str
    callback_url: str
    number: float


class ComfyUIProvider:
    name = "comfyui"
    label = "ComfyUI"
    #: Usually on this machine or the LAN: the app reaches it, it never calls the app.
    runs_here = True
    routes: Sequence[BaseRoute] = ()
    submit_limit: SubmitLimit | None = None
    #: ComfyUI bounds no run; the app's own bound applies.
    max_run_s = UNDOCUMENTED_MAX_RUN_S
    can_cancel = True

    def __init__(self, *, base_url: str, http: httpx.AsyncClient, secret: str, progress: ProgressSink) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.secret = secret
        self.progress = progress
        #: This process's name at ComfyUI: the messages of the prompts it queued come to its socket.
        self.client_id = uuid.uuid4().hex
        self._prompts: dict[str, _Prompt] = {}
        self._executing = ""
        self._socket: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._models: tuple[ModelInfo, ...] | None = None

    # models ----------------------------------------------------------------
    @property
    def models(self) -> Sequence[ModelInfo]:
        """The server's checkpoints, read at the first need: once per process (the page's model
        list is built once too, at start); restart the app to see new ones."""
        if self._models is None:
            self._models = self._list_models()
        return self._models

    @models.setter
    def models(self, models: Sequence[ModelInfo]) -> None:
        self._models = tuple(models)

    def _list_models(self) -> tuple[ModelInfo, ...]:
        """A server that does not answer gives one disabled entry per kind saying so."""
        try:
            response = httpx.get(f"{self.base_url}/object_info/CheckpointLoaderSimple", timeout=LIST_TIMEOUT_S)
            response.raise_for_status()
            names = checkpoints_of(response.json())
            reason = "" if names else f"ComfyUI at {self.base_url} lists no checkpoint"
        except (httpx.HTTPError, ValueError) as exc:
            names, reason = [], f"ComfyUI at {self.base_url} did not answer ({type(exc).__name__}); restart to retry"
        if not names:
            return (
                ModelInfo(f"{PREFIX}unavailable", self.name, NodeKind.TEXT_TO_IMAGE, disabled_reason=reason),
                ModelInfo(f"{PREFIX}unavailable{EDIT_SUFFIX}", self.name, NodeKind.IMAGE_EDIT, (), 1, reason),
            )
        models = []
        for name in names:
            models.append(ModelInfo(f"{PREFIX}{name}", self.name, NodeKind.TEXT_TO_IMAGE))
            models.append(ModelInfo(f"{PREFIX}{name}{EDIT_SUFFIX}", self.name, NodeKind.IMAGE_EDIT, max_input_images=1))
        return tuple(models)

    # Provider protocol --------------------------------------------------------
    async def submit(self, request: SubmitRequest) -> TaskRef:
        info = next((m for m in self.models if m.id == request.model), None)
        if info is None or info.disabled_reason:
            raise ProviderError(f"ComfyUI has no model {request.model!r}")
        checkpoint = request.model.removeprefix(PREFIX).removesuffix(EDIT_SUFFIX)
        input_name = None
        if info.kind == NodeKind.IMAGE_EDIT:
            if not request.input_image_urls:
                raise ProviderError("Image edit needs an input image")
            input_name = await self._upload(request.job_id, request.input_image_urls[0])
        seed = int(hashlib.sha256(request.job_id.encode()).hexdigest()[:12], 16)
        graph = workflow(checkpoint, request.prompt, request.aspect_ratio, seed, input_name)
        await self._ensure_socket()
        response = await self._call("POST", "/prompt", json={"prompt": graph, "client_id": self.client_id})
        body = _json(response)
        if response.status_code == 400:
            raise ProviderError(refusal(body))
        if response.status_code != 200 or not isinstance(body, dict) or not body.get("prompt_id"):
            raise ProviderError(f"ComfyUI answered HTTP {response.status_code} to the workflow", retryable=True)
        prompt_id = str(body["prompt_id"])
        self._prompts[prompt_id] = _Prompt(request.job_id, request.callback_url, float(body.get("number", 0)))
        self._spawn(self._report_positions())
        return TaskRef(prompt_id)

    async def query(self, task: TaskRef) -> TaskUpdate:
        update = await self._ask(task.task_id)
        if update.status.is_terminal:
            self._prompts.pop(task.task_id, None)  # the socket has nothing more to wait for
        return update

    async def _ask(self, prompt_id: str) -> TaskUpdate:
        history = _json(await self._call("GET", f"/history/{prompt_id}"))
        entry = history.get(prompt_id) if isinstance(history, dict) else None
        if isinstance(entry, dict):
            return self._ended(prompt_id, entry)
        queue = _json(await self._call("GET", "/queue"))
        if prompt_id in _ids(queue, "queue_running"):
            return TaskUpdate(prompt_id, JobStatus.RUNNING)
        if prompt_id in _ids(queue, "queue_pending"):
            return TaskUpdate(prompt_id, JobStatus.SUBMITTED)
        lost = "ComfyUI has no record of this prompt (was it restarted?); retry it"
        return TaskUpdate(prompt_id, JobStatus.FAILED, error=lost)

    async def cancel(self, task: TaskRef) -> None:
        """Out of ComfyUI's queue if it waits there; interrupted only if it is the one running."""
        await self._call("POST", "/queue", json={"delete": [task.task_id]})
        queue = _json(await self._call("GET", "/queue"))
        if task.task_id in _ids(queue, "queue_running"):
            await self._call("POST", "/interrupt", json={"prompt_id": task.task_id})
        self._prompts.pop(task.task_id, None)

    async def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> TaskUpdate:
        """The report this provider sent itself when a prompt ended (ComfyUI has no webhooks)."""
        try:
            payload = json.loads(body)
            prompt_id = str(payload["prompt_id"])
            status = JobStatus(payload["status"])
        except (ValueError, KeyError, TypeError) as exc:
            raise WebhookRejected(f"Malformed ComfyUI report: {exc}") from exc
        timestamp, signature = headers.get(TIMESTAMP_HEADER, ""), headers.get(SIGNATURE_HEADER, "")
        require_fresh_timestamp(timestamp, time.time(), "ComfyUI")
        if not hmac.compare_digest(sign(self.secret, prompt_id, timestamp), signature):
            raise WebhookRejected("Bad ComfyUI report signature", 401)
        urls = tuple(str(u) for u in payload.get("result_urls") or [])
        return TaskUpdate(prompt_id, status, urls, payload.get("error"), delivery_id=signature)

    # HTTP ----------------------------------------------------------------------
    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self.http.request(method, f"{self.base_url}{path}", **kwargs)
        except httpx.HTTPError as exc:
            raise ProviderError(
                f"ComfyUI at {self.base_url} is unreachable ({type(exc).__name__}): is it running?", retryable=True
            ) from exc

    async def _upload(self, job_id: str, url: str) -> str:
        """Send an edit's input to ComfyUI's input folder; returns the name `LoadImage` takes."""
        source = await self.http.get(url)
        source.raise_for_status()
        files = {"image": (f"canvas-{job_id}.png", source.content, source.headers.get("content-type", "image/png"))}
        response = await self._call("POST", "/upload/image", files=files, data={"overwrite": "true"})
        body = _json(response)
        if response.status_code != 200 or not isinstance(body, dict) or "name" not in body:
            raise ProviderError(f"ComfyUI refused the input image (HTTP {response.status_code})")
        return f"{body['subfolder']}/{body['name']}" if body.get("subfolder") else str(body["name"])

    def _ended(self, prompt_id: str, entry: dict[str, Any]) -> TaskUpdate:
        found = entry.get("status")
        status: dict[str, Any] = found if isinstance(found, dict) else {}
        messages = {m[0]: m[1] for m in status.get("messages", []) if isinstance(m, list) and len(m) == 2}
        if "execution_interrupted" in messages:
            return TaskUpdate(prompt_id, JobStatus.CANCELLED)
        if status.get("status_str") == "error" or "execution_error" in messages:
            error = messages.get("execution_error") or {}
            where = f" in {error['node_type']}" if error.get("node_type") else ""
            reason = error.get("exception_message") or "no reason given"
            return TaskUpdate(prompt_id, JobStatus.FAILED, error=f"ComfyUI failed{where}: {reason}")
        urls = []
        for output in (entry.get("outputs") or {}).values():
            for image in output.get("images", []) if isinstance(output, dict) else ():
                if image.get("type") == "output":
                    query = urlencode({k: image.get(k, "") for k in ("filename", "subfolder", "type")})
                    urls.append(f"{self.base_url}/view?{query}")
        if not urls:
            return TaskUpdate(prompt_id, JobStatus.FAILED, error="ComfyUI finished without an image")
        return TaskUpdate(prompt_id, JobStatus.COMPLETED, tuple(urls))

    # the websocket -----------------------------------------------------------------
    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _ensure_socket(self) -> None:
        """Open the websocket before a prompt is queued, so none of its messages is missed. A server
        whose socket does not open still runs the prompt: the poll finishes it, without live progress."""
        if self._socket is not None and not self._socket.done():
            return
        tried = asyncio.Event()
        self._socket = asyncio.create_task(self._listen(tried))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tried.wait(), LIST_TIMEOUT_S)

    async def _listen(self, tried: asyncio.Event) -> None:
        """Read ComfyUI's messages until this process's last prompt there ended; reconnect after a loss."""
        url = self.base_url.replace("http", "ws", 1) + f"/ws?clientId={self.client_id}"
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.ws_connect(url, heartbeat=30) as socket:
                        tried.set()
                        async for message in socket:
                            if message.type == aiohttp.WSMsgType.BINARY:
                                self._on_preview(message.data)
                            elif message.type == aiohttp.WSMsgType.TEXT:
                                ended = await self._on_message(message.json())
                                if ended and not self._prompts:
                                    return  # nothing of ours left there: the next submit opens it again
                except (aiohttp.ClientError, OSError, ValueError) as exc:
                    log_step(log, "comfyui.socket_lost", error=type(exc).__name__)
                    if not tried.is_set():
                        tried.set()
                        return
                if not self._prompts:
                    return
                await asyncio.sleep(1.0)

    async def _on_message(self, message: Any) -> bool:
        """Handle one message; True when it ended a prompt."""
        kind = message.get("type") if isinstance(message, dict) else None
        data = message.get("data") if isinstance(message, dict) else None
        if not isinstance(data, dict):
            return False
        prompt_id = str(data.get("prompt_id") or "")
        if kind == "status":
            self._spawn(self._report_positions())
        elif kind in ("execution_start", "executing") and prompt_id:
            self._executing = prompt_id
            if kind == "execution_start" and (mine := self._prompts.get(prompt_id)):
                self.progress(mine.job_id, JobStatus.RUNNING, TaskProgress())
            if kind == "executing" and data.get("node") is None:
                return self._finished(prompt_id)  # servers before execution_success end this way
        elif kind == "progress" and (mine := self._prompts.get(prompt_id)):
            value, most = data.get("value"), data.get("max")
            if isinstance(value, int | float) and isinstance(most, int | float) and most > 0:
                self.progress(mine.job_id, JobStatus.RUNNING, TaskProgress(percent=100 * value / most))
        elif kind in ("execution_success", "execution_error", "execution_interrupted"):
            return self._finished(prompt_id)
        return False

    def _on_preview(self, frame: bytes) -> None:
        """A binary frame: a preview of the prompt executing (the frame names none)."""
        if len(frame) < 8 or int.from_bytes(frame[:4], "big") != PREVIEW_IMAGE:
            return
        mine = self._prompts.get(self._executing)
        if mine is not None:
            self.progress(mine.job_id, JobStatus.RUNNING, TaskProgress(preview=bytes(frame[8:])))

    async def _report_positions(self) -> None:
        """Our waiting prompts' places in ComfyUI's queue (1: next to start), after any change of it."""
        waiting = [p for p in self._prompts if p != self._executing]
        if not waiting:
            return
        try:
            queue = _json(await self._call("GET", "/queue"))
        except ProviderError:
            return
        pending = sorted(_entries(queue, "queue_pending"), key=lambda entry: entry[0])
        for place, entry in enumerate(pending, start=1):
            if (mine := self._prompts.get(str(entry[1]))) is not None:
                self.progress(mine.job_id, JobStatus.SUBMITTED, TaskProgress(queue_position=place))

    def _finished(self, prompt_id: str) -> bool:
        """Tell the app a prompt of ours ended, as a provider's webhook would (the result from /history)."""
        mine = self._prompts.pop(prompt_id, None)
        if mine is None:
            return False
        self._spawn(self._report_end(prompt_id, mine))
        return True

    async def _report_end(self, prompt_id: str, mine: _Prompt) -> None:
        try:
            update = await self.query(TaskRef(prompt_id))
            body = {
                "prompt_id": prompt_id,
                "status": update.status.value,
                "result_urls": list(update.result_urls),
                "error": update.error,
            }
            async for attempt in CALLBACK_RETRIES.attempts_on(httpx.HTTPError):
                with attempt:
                    timestamp = str(int(time.time()))
                    headers = {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(self.secret, prompt_id, timestamp)}
                    response = await self.http.post(mine.callback_url, json=body, headers=headers)
                    if response.status_code >= 500:
                        response.raise_for_status()
        except (httpx.HTTPError, ProviderError) as exc:
            # Nothing is lost: the fallback poll reads /history itself.
            log_step(log, "provider.callback_failed", job_id=mine.job_id, error=type(exc).__name__)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _entries(queue: Any, key: str) -> list[list[Any]]:
    entries = queue.get(key) if isinstance(queue, dict) else None
    return [e for e in entries or [] if isinstance(e, list) and len(e) >= 2]


def _ids(queue: Any, key: str) -> set[str]:
    return {str(entry[1]) for entry in _entries(queue, key)}
