"""Replicate: Google's nano-banana, for text to image and for edits, through the predictions API.

Contract (replicate.com/docs, see the README's table of documentation versions):
`POST /v1/models/google/nano-banana/predictions` with `input`, `webhook` and
`webhook_events_filter: ["completed"]`, and without `Prefer: wait`, so it answers at once
with the prediction; `GET /v1/predictions/{id}` is the fallback poll and
`POST /v1/predictions/{id}/cancel` cancels. Statuses: starting, processing, succeeded,
failed, canceled (and aborted: ended before it started). The webhook body is the
prediction, signed by the Standard Webhooks scheme (`webhook-id`, `webhook-timestamp`,
`webhook-signature`) with the account's secret from `GET /v1/webhooks/default/secret`,
verified with the `standardwebhooks` library. One Replicate model serves both of our
models: an edit is the same call with `image_input`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.routing import BaseRoute

from core.contract import (
    JobStatus,
    ModelInfo,
    NodeKind,
    ProviderError,
    SubmitLimit,
    SubmitRequest,
    TaskProgress,
    TaskRef,
    TaskUpdate,
    WebhookRejected,
    require_reachable_inputs,
)
from core.retries import parse_retry_after
from providers.log_progress import percent_from_logs

REPLICATE_MODEL = "google/nano-banana"
TEXT_MODEL = "replicate/google/nano-banana"
EDIT_MODEL = "replicate/google/nano-banana/edit"
ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
#: An edit may keep its input's shape.
MATCH_INPUT = "match_input_image"
MAX_INPUT_IMAGES = 10
#: A prediction in the answer: 200 (a read), 201 Created, or 202 Accepted, which Replicate documents
#: for a create too (the prediction runs, and is billed, either way).
ANSWERED = (200, 201, 202)
#: Documented: 600 prediction creations per minute per account.
TASKS_PER_WINDOW, WINDOW_S = 600, 60
#: How soon a failed signature check may refetch the secret (it may have been rotated).
SECRET_REFRESH_S = 60

_STATUSES = {
    "starting": JobStatus.SUBMITTED,
    "processing": JobStatus.RUNNING,
    "succeeded": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
    "canceled": JobStatus.CANCELLED,
    "aborted": JobStatus.FAILED,
}


def _detail(body: Any) -> str:
    """Replicate's problem-details errors: {"title": ..., "detail": ..., "status": ...}."""
    if not isinstance(body, dict):
        return ""
    detail = body.get("detail") or body.get("title") or ""
    return str(detail)[:300]


def replicate_error(status_code: int, body: Any = None, retry_after_s: float | None = None) -> ProviderError:
    detail = _detail(body)
    suffix = f": {detail}" if detail else ""
    if status_code in (401, 403):
        return ProviderError(f"Replicate rejected REPLICATE_API_TOKEN ({status_code})")
    if status_code == 402:
        return ProviderError(f"Replicate: billing is required or credit ran out (402){suffix}")
    if status_code == 404:
        return ProviderError(f"Replicate does not know this model or prediction (404){suffix}")
    if status_code == 422:
        return ProviderError(f"Replicate refused the input (422){suffix}")
    if status_code == 429:
        return ProviderError("Replicate is rate limiting requests (429)", retryable=True, retry_after_s=retry_after_s)
    if status_code >= 500:
        return ProviderError(f"Replicate had a server error ({status_code}){suffix}", retryable=True)
    return ProviderError(f"Replicate answered HTTP {status_code}{suffix}")


def prediction_update(prediction: Any) -> TaskUpdate:
    """A prediction object (from a poll or a webhook) as a TaskUpdate; ValueError when unreadable."""
    if not isinstance(prediction, dict) or not isinstance(prediction.get("id"), str) or not prediction["id"]:
        raise ValueError("no prediction id")
    task_id, state = prediction["id"], prediction.get("status")
    status = _STATUSES.get(state) if isinstance(state, str) else None
    if status is None:
        raise ValueError(f"unknown status {state!r}")
    if state == "aborted":
        return TaskUpdate(task_id, status, error="Replicate aborted the prediction before it started")
    if status == JobStatus.FAILED:
        reason = str(prediction.get("error") or "no reason given")[:300]
        return TaskUpdate(task_id, status, error=f"Replicate generation failed: {reason}")
    if status == JobStatus.COMPLETED:
        output = prediction.get("output")
        urls = tuple(u for u in ([output] if isinstance(output, str) else output or []) if isinstance(u, str))
        if not urls:
            return TaskUpdate(task_id, JobStatus.FAILED, error="Replicate reported success without an output image")
        return TaskUpdate(task_id, status, urls)
    logs = prediction.get("logs")
    lines = logs.strip().splitlines() if isinstance(logs, str) else []
    last = lines[-1].rsplit("\r", 1)[-1][:200] if lines else ""
    progress = last or ("starting" if status == JobStatus.SUBMITTED else "")
    return TaskUpdate(task_id, status, progress=progress, live=TaskProgress(percent=percent_from_logs(lines)))


class ReplicateProvider:
    name = "replicate"
    label = "Replicate"
    runs_here = False
    routes: Sequence[BaseRoute] = ()
    #: "Predictions time out after running for 30 minutes" (Replicate's prediction lifecycle docs);
    #: `POST /v1/predictions/{id}/cancel` stops one.
    max_run_s = 30 * 60.0
    can_cancel = True

    def __init__(
        self,
        *,
        api_token: str,
        base_url: str,
        http: httpx.AsyncClient,
        webhook_secret: str = "",
        public_url: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api_token = api_token
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.public_url = public_url
        self.clock = clock
        #: An explicit secret is final; otherwise the fetched one, and when it was fetched.
        self._fixed_secret = webhook_secret
        self._secret = webhook_secret
        self._secret_fetched_at = float("-inf")
        self.submit_limit = SubmitLimit.per_account(
            api_token, TASKS_PER_WINDOW, WINDOW_S, f"Replicate takes {TASKS_PER_WINDOW} new predictions per minute"
        )
        reason = "" if api_token else "set REPLICATE_API_TOKEN to use Replicate"
        self.models: Sequence[ModelInfo] = (
            ModelInfo(TEXT_MODEL, self.name, NodeKind.TEXT_TO_IMAGE, ASPECT_RATIOS, disabled_reason=reason),
            ModelInfo(
                EDIT_MODEL, self.name, NodeKind.IMAGE_EDIT, (*ASPECT_RATIOS, MATCH_INPUT), MAX_INPUT_IMAGES, reason
            ),
        )

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_token}"}

    async def submit(self, request: SubmitRequest) -> TaskRef:
        if not self.api_token:
            raise ProviderError("Replicate is not configured: set REPLICATE_API_TOKEN")
        ratios = next(m.aspect_ratios for m in self.models if m.id == request.model)
        payload: dict[str, Any] = {
            "prompt": request.prompt,
            "aspect_ratio": request.aspect_ratio if request.aspect_ratio in ratios else "1:1",
            "output_format": "png",
        }
        if request.model == EDIT_MODEL:
            if not request.input_image_urls or len(request.input_image_urls) > MAX_INPUT_IMAGES:
                raise ProviderError(f"{EDIT_MODEL} takes 1 to {MAX_INPUT_IMAGES} input images")
            require_reachable_inputs("Replicate", self.public_url)
            payload["image_input"] = list(request.input_image_urls)
        body = {"input": payload, "webhook": request.callback_url, "webhook_events_filter": ["completed"]}
        # No `Prefer: wait`: the prediction is answered at once and finishes by webhook or poll.
        response = await self.http.post(
            f"{self.base_url}/v1/models/{REPLICATE_MODEL}/predictions", json=body, headers=self._auth
        )
        prediction = self._body(response)
        task_id = prediction.get("id")
        if not isinstance(task_id, str) or not task_id:
            raise ProviderError("Replicate answered without a prediction id", retryable=True)
        return TaskRef(task_id)

    async def query(self, task: TaskRef) -> TaskUpdate:
        response = await self.http.get(f"{self.base_url}/v1/predictions/{task.task_id}", headers=self._auth)
        try:
            return prediction_update(self._body(response))
        except ValueError as exc:
            raise ProviderError(f"Replicate sent an unreadable prediction ({exc})", retryable=True) from exc

    async def cancel(self, task: TaskRef) -> None:
        """Best effort: a prediction that already finished simply stays finished."""
        await self.http.post(f"{self.base_url}/v1/predictions/{task.task_id}/cancel", headers=self._auth)

    async def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> TaskUpdate:
        lowered = {k.lower(): v for k, v in headers.items()}
        await self._verify(lowered, body)
        try:
            update = prediction_update(json.loads(body))
        except ValueError as exc:
            raise WebhookRejected(f"Malformed Replicate webhook: {exc}") from exc
        # The signature covers the whole body, so its result stands; `webhook-id` stays the same
        # when Replicate resends a message, so a second delivery of it is a replay.
        return replace(update, delivery_id=lowered["webhook-id"])

    async def _verify(self, headers: dict[str, str], body: bytes) -> None:
        if not all(headers.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature")):
            raise WebhookRejected("Unsigned Replicate webhook", 401)
        for refresh in (False, True):
            secret = await self._signing_secret(refresh)
            try:
                Webhook(secret).verify(body, headers, json_parse=False)
                return
            except (WebhookVerificationError, ValueError):
                continue
        raise WebhookRejected("Bad Replicate webhook signature", 401)

    async def _signing_secret(self, refresh: bool) -> str:
        """The account's webhook secret, fetched once and kept; refetched (at most once a minute) on a miss."""
        if self._fixed_secret:
            return self._fixed_secret
        age = self.clock() - self._secret_fetched_at
        if self._secret and not (refresh and age > SECRET_REFRESH_S):
            return self._secret
        try:
            response = await self.http.get(f"{self.base_url}/v1/webhooks/default/secret", headers=self._auth)
            response.raise_for_status()
            key = response.json()["key"]
            if not isinstance(key, str) or not key:
                raise ValueError("empty key")
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            if self._secret:
                return self._secret
            reason = f"Cannot fetch Replicate's webhook signing secret ({type(exc).__name__})"
            raise WebhookRejected(reason, 503) from exc
        self._secret, self._secret_fetched_at = key, self.clock()
        return key

    def _body(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code not in ANSWERED or not isinstance(body, dict):
            raise replicate_error(
                response.status_code if response.status_code not in ANSWERED else 502,
                body,
                parse_retry_after(response.headers.get("retry-after")),
            )
        return body
