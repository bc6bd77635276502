"""KIE.ai: `google/nano-banana` (text to image) and `google/nano-banana-edit` (image to image).

Contract (docs.kie.ai, see the README's table of documentation versions):
`POST /api/v1/jobs/createTask`, `GET /api/v1/jobs/recordInfo`, callbacks to `callBackUrl`
with the record, optionally signed with
base64(HMAC-SHA256(KIE_WEBHOOK_HMAC_KEY, taskId + "." + timestamp)). The body's `code`
carries errors even when HTTP says 200, so both are checked. The signature covers the task
id and timestamp, not the body, so a callback (signed or not) only prompts a recordInfo
query and its own `resultJson` is never used. KIE has no cancel endpoint: a cancelled job
is cancelled here, and a late result is logged, not stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import httpx
from starlette.routing import BaseRoute

from core.contract import (
    UNDOCUMENTED_MAX_RUN_S,
    JobStatus,
    ModelInfo,
    NodeKind,
    ProviderError,
    SubmitLimit,
    SubmitRequest,
    TaskRef,
    TaskUpdate,
    WebhookRejected,
    require_fresh_timestamp,
    require_reachable_inputs,
)
from core.retries import parse_retry_after

TEXT_MODEL = "google/nano-banana"
EDIT_MODEL = "google/nano-banana-edit"
ASPECT_RATIOS = ("1:1", "9:16", "16:9", "3:4", "4:3", "3:2", "2:3", "5:4", "4:5", "21:9", "auto")
MAX_PROMPT_CHARS = 5000
MAX_INPUT_IMAGES = 10
TIMESTAMP_HEADER = "x-webhook-timestamp"
SIGNATURE_HEADER = "x-webhook-signature"
#: Documented: 20 new tasks per 10 seconds per account; beyond it 429, and KIE does not queue them.
TASKS_PER_WINDOW, WINDOW_S = 20, 10
#: recordInfo answers 422 "recordInfo is null" for a task created a moment ago: ask again this long.
RECORD_GRACE_S = 120.0

#: code -> (user-readable message, worth retrying)
ERRORS: dict[int, tuple[str, bool]] = {
    401: ("KIE.ai rejected the API key (401 unauthorized): check KIE_API_KEY", False),
    402: ("KIE.ai: insufficient credits (402): top up the account", False),
    404: ("KIE.ai does not know this request (404 not found)", False),
    408: ("KIE.ai got no result from the model for over 10 minutes (408); asking again", True),
    422: ("KIE.ai refused the request (422 validation error)", False),
    429: ("KIE.ai is rate limiting requests (429)", True),
    433: ("KIE.ai sub-key usage limit reached (433)", False),
    455: ("KIE.ai is under maintenance (455)", True),
    500: ("KIE.ai had a server error (500)", True),
    501: ("KIE.ai could not generate the image (501)", False),
    505: ("This KIE.ai feature is disabled for the account (505)", False),
}

_STATES = {
    "waiting": JobStatus.SUBMITTED,
    "queuing": JobStatus.SUBMITTED,
    "generating": JobStatus.RUNNING,
    "success": JobStatus.COMPLETED,
    "fail": JobStatus.FAILED,
}


class KieError(ProviderError):
    """An error KIE.ai answered with, keeping its code (recordInfo's 422 means "not yet" at first)."""

    def __init__(self, code: int, message: str, *, retryable: bool, retry_after_s: float | None) -> None:
        super().__init__(message, retryable=retryable, retry_after_s=retry_after_s)
        self.code = code


def kie_error(code: int, msg: str = "", retry_after_s: float | None = None) -> KieError:
    text, retryable = ERRORS.get(code, (f"KIE.ai answered with error code {code}", code >= 500))
    if msg and msg.lower() not in ("success", "") and code in (422, 501):
        text = f"{text}: {msg}"
    return KieError(code, text, retryable=retryable, retry_after_s=retry_after_s)


def sign(key: str, task_id: str, timestamp: str) -> str:
    digest = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _task_id(data: Mapping[str, Any]) -> str:
    task_id = data.get("taskId") or data.get("task_id")
    if not isinstance(task_id, str) or not task_id:
        raise ValueError("no taskId")
    return task_id


def parse_record(data: Mapping[str, Any], *, verified: bool = True) -> TaskUpdate:
    """A recordInfo `data` object (also the callback's) as a TaskUpdate."""
    task_id = _task_id(data)
    state = data.get("state")
    status = _STATES.get(state) if isinstance(state, str) else None
    if status is None:
        raise ValueError(f"unknown state {state!r}")
    if status == JobStatus.FAILED:
        reason = data.get("failMsg") or "no reason given"
        code = data.get("failCode")
        suffix = f" (code {code})" if code not in (None, "") else ""
        return TaskUpdate(task_id, status, error=f"KIE.ai generation failed: {reason}{suffix}", verified=verified)
    if status != JobStatus.COMPLETED:
        return TaskUpdate(task_id, status, verified=verified)
    try:
        result = json.loads(data.get("resultJson") or "")
        urls = tuple(str(u) for u in result["resultUrls"] if isinstance(u, str))
    except (ValueError, TypeError, KeyError):
        return TaskUpdate(
            task_id, JobStatus.FAILED, error="KIE.ai reported success with an unreadable resultJson", verified=verified
        )
    if not urls:
        return TaskUpdate(
            task_id, JobStatus.FAILED, error="KIE.ai reported success without a result URL", verified=verified
        )
    return TaskUpdate(task_id, status, urls, verified=verified)


class KieProvider:
    name = "kie"
    label = "KIE.ai"
    runs_here = False
    routes: Sequence[BaseRoute] = ()
    #: KIE.ai documents neither a longest run nor a way to cancel a task.
    max_run_s = UNDOCUMENTED_MAX_RUN_S
    can_cancel = False

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        http: httpx.AsyncClient,
        hmac_key: str = "",
        public_url: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.hmac_key = hmac_key
        self.public_url = public_url
        self.clock = clock
        self.submit_limit = SubmitLimit.per_account(
            api_key,
            TASKS_PER_WINDOW,
            WINDOW_S,
            f"KIE.ai takes {TASKS_PER_WINDOW} new tasks per {WINDOW_S} s per account",
        )
        reason = "" if api_key else "set KIE_API_KEY to use KIE.ai"
        self.models: Sequence[ModelInfo] = (
            ModelInfo(TEXT_MODEL, self.name, NodeKind.TEXT_TO_IMAGE, ASPECT_RATIOS, disabled_reason=reason),
            ModelInfo(EDIT_MODEL, self.name, NodeKind.IMAGE_EDIT, ASPECT_RATIOS, MAX_INPUT_IMAGES, reason),
        )

    async def submit(self, request: SubmitRequest) -> TaskRef:
        if not self.api_key:
            raise ProviderError("KIE.ai is not configured: set KIE_API_KEY")
        if len(request.prompt) > MAX_PROMPT_CHARS:
            raise ProviderError(f"KIE.ai prompts are limited to {MAX_PROMPT_CHARS} characters")
        ratio = request.aspect_ratio if request.aspect_ratio in ASPECT_RATIOS else "1:1"
        # Current docs read `aspect_ratio` (`image_size` deprecated), older ones only `image_size`:
        # sending one alone risks a silent 1:1 image, so both carry the user's choice.
        payload: dict[str, Any] = {"prompt": request.prompt, "output_format": "png", "aspect_ratio": ratio}
        payload["image_size"] = ratio
        if request.model == EDIT_MODEL:
            if not request.input_image_urls or len(request.input_image_urls) > MAX_INPUT_IMAGES:
                raise ProviderError(f"{EDIT_MODEL} takes 1 to {MAX_INPUT_IMAGES} input images")
            require_reachable_inputs("KIE.ai", self.public_url)
            payload["image_urls"] = list(request.input_image_urls)
        body = {"model": request.model, "callBackUrl": request.callback_url, "input": payload}
        data = await self._call("POST", "/api/v1/jobs/createTask", json=body)
        try:
            return TaskRef(_task_id(data), {"created_at": str(self.clock())})
        except ValueError:
            raise ProviderError("KIE.ai answered without a task id", retryable=True) from None

    async def query(self, task: TaskRef) -> TaskUpdate:
        try:
            data = await self._call("GET", "/api/v1/jobs/recordInfo", params={"taskId": task.task_id})
        except KieError as exc:
            if exc.code == 422 and self._age_s(task) < RECORD_GRACE_S:
                raise ProviderError(
                    "KIE.ai has no record of the new task yet (422 recordInfo is null); asking again", retryable=True
                ) from exc
            raise
        try:
            return parse_record(data)
        except ValueError as exc:
            raise ProviderError(f"KIE.ai sent an unreadable task record ({exc})", retryable=True) from exc

    def _age_s(self, task: TaskRef) -> float:
        """Seconds since the task was created (infinite when unknown, so a 422 is then final)."""
        try:
            return self.clock() - float(task.handle["created_at"])
        except (KeyError, ValueError):
            return float("inf")

    async def cancel(self, task: TaskRef) -> None:
        """KIE.ai has no cancel endpoint; the job is cancelled on our side only."""

    async def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> TaskUpdate:
        headers = {k.lower(): v for k, v in headers.items()}  # HTTP header names are case-insensitive
        try:
            payload = json.loads(body)
            data = payload["data"]
            if not isinstance(data, dict):
                raise TypeError("data is not an object")
            task_id = _task_id(data)
        except (ValueError, KeyError, TypeError) as exc:
            raise WebhookRejected(f"Malformed KIE.ai callback: {exc}") from exc
        verified = False
        if self.hmac_key:
            self._verify(headers, task_id)
            verified = True
        try:
            update = parse_record(data, verified=verified)
        except ValueError as exc:
            raise WebhookRejected(f"Malformed KIE.ai callback: {exc}") from exc
        # Signed or not, the body (resultJson included) is unauthenticated: recordInfo has the word.
        delivery_id = headers.get(SIGNATURE_HEADER, "") if verified else ""
        return replace(update, delivery_id=delivery_id, confirm_with_query=True)

    def _verify(self, headers: Mapping[str, str], task_id: str) -> None:
        timestamp = headers.get(TIMESTAMP_HEADER, "")
        signature = headers.get(SIGNATURE_HEADER, "")
        require_fresh_timestamp(timestamp, self.clock(), "KIE.ai")
        if not signature or not hmac.compare_digest(sign(self.hmac_key, task_id, timestamp), signature):
            raise WebhookRejected("Bad KIE.ai webhook signature", 401)

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = await self.http.request(
            method, self.base_url + path, headers={"Authorization": f"Bearer {self.api_key}"}, **kwargs
        )
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        try:
            body = response.json()
        except ValueError:
            raise kie_error(
                response.status_code if response.status_code != 200 else 500, retry_after_s=retry_after
            ) from None
        code = body.get("code") if isinstance(body, dict) else None
        if response.status_code != 200 or code != 200:
            effective = code if isinstance(code, int) and code != 200 else response.status_code
            msg = body.get("msg", "") if isinstance(body, dict) else ""
            raise kie_error(effective if effective != 200 else 500, str(msg or ""), retry_after)
        data = body.get("data")
        if not isinstance(data, dict):
            raise ProviderError("KIE.ai answered without data", retryable=True)
        return data
