"""Fal.ai queue API: `fal-ai/nano-banana` and `fal-ai/nano-banana/edit`.

Submit `POST {queue}/{model}?fal_webhook=...` and keep the status, response and
cancel URLs it returns (they drop the model's sub-path). Status answers 202 while
IN_QUEUE (with the queue position) or IN_PROGRESS (with logs) and 200 when
COMPLETED; a failure is a COMPLETED status carrying `error` and `error_type`.
Webhooks are signed with ED25519 over
`request_id \\n user_id \\n timestamp \\n sha256_hex(body)` by a key in Fal's JWKS
(documented at `https://rest.alpha.fal.ai/.well-known/jwks.json`). After Fal retried a
request the body's `gateway_request_id` names the last try while `request_id` stays the
queue's id; a result too large to include arrives as `payload: null` plus `payload_error`,
and is then read from the queue. See the README for the documentation versions checked.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from starlette.routing import BaseRoute

from core.contract import (
    UNDOCUMENTED_MAX_RUN_S,
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
    require_fresh_timestamp,
    require_reachable_inputs,
)
from core.retries import parse_retry_after
from providers.log_progress import percent_from_logs

TEXT_MODEL = "fal-ai/nano-banana"
EDIT_MODEL = "fal-ai/nano-banana/edit"
ASPECT_RATIOS = ("21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16")
JWKS_TTL_S = 24 * 3600
JWKS_REFRESH_ON_MISS_S = 60
HEADER_PREFIX = "x-fal-webhook-"


def _detail(body: Any) -> str:
    """Fal's error bodies: {"detail": "..."} or {"detail": [{"msg": ...}, ...]} or {"error": ...}."""
    if not isinstance(body, dict):
        return ""
    detail = body.get("detail") or body.get("error") or body.get("payload_error") or ""
    if isinstance(detail, list):
        return "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
    return str(detail)


def fal_error(status_code: int, body: Any = None, retry_after_s: float | None = None) -> ProviderError:
    detail = _detail(body)
    suffix = f": {detail}" if detail else ""
    if status_code in (401, 403):
        return ProviderError(f"Fal.ai rejected FAL_KEY ({status_code}){suffix}")
    if status_code == 404:
        return ProviderError("Fal.ai does not know this request (404 not found)")
    if status_code == 422:
        return ProviderError(f"Fal.ai refused the request (422 validation error){suffix}")
    if status_code == 429:
        return ProviderError("Fal.ai is rate limiting requests (429)", retryable=True, retry_after_s=retry_after_s)
    if status_code >= 500:
        return ProviderError(f"Fal.ai had a server error ({status_code}){suffix}", retryable=True)
    return ProviderError(f"Fal.ai answered HTTP {status_code}{suffix}")


def _result_update(request_id: str, output: Any, *, verified: bool = True) -> TaskUpdate:
    """A finished request's output: images on success, otherwise the error it carries."""
    images = output.get("images") if isinstance(output, dict) else None
    urls = tuple(i["url"] for i in images or [] if isinstance(i, dict) and isinstance(i.get("url"), str))
    if urls:
        return TaskUpdate(request_id, JobStatus.COMPLETED, urls, verified=verified)
    reason = _detail(output) or "no image in the result"
    return TaskUpdate(request_id, JobStatus.FAILED, error=f"Fal.ai generation failed: {reason}", verified=verified)


class FalProvider:
    name = "fal"
    label = "Fal.ai"
    runs_here = False
    routes: Sequence[BaseRoute] = ()
    #: Fal.ai bounds only the wait before a runner starts (`X-Fal-Request-Timeout`, off by default),
    #: not the run; its queue cancels a task (`PUT .../requests/{id}/cancel`), started or not.
    max_run_s = UNDOCUMENTED_MAX_RUN_S
    can_cancel = True
    #: Fal.ai queues what it cannot start yet, so there is no cap to keep here.
    submit_limit: SubmitLimit | None = None

    def __init__(
        self,
        *,
        api_key: str,
        queue_url: str,
        jwks_url: str,
        http: httpx.AsyncClient,
        public_url: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api_key = api_key
        self.queue_url = queue_url.rstrip("/")
        self.jwks_url = jwks_url
        self.http = http
        self.public_url = public_url
        self.clock = clock
        self._keys: list[Ed25519PublicKey] = []
        self._keys_fetched_at = float("-inf")
        reason = "" if api_key else "set FAL_KEY to use Fal.ai"
        self.models: Sequence[ModelInfo] = (
            ModelInfo(TEXT_MODEL, self.name, NodeKind.TEXT_TO_IMAGE, ASPECT_RATIOS, disabled_reason=reason),
            ModelInfo(EDIT_MODEL, self.name, NodeKind.IMAGE_EDIT, (*ASPECT_RATIOS, "auto"), 10, reason),
        )

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Key {self.api_key}"}

    async def submit(self, request: SubmitRequest) -> TaskRef:
        if not self.api_key:
            raise ProviderError("Fal.ai is not configured: set FAL_KEY")
        payload: dict[str, Any] = {"prompt": request.prompt, "num_images": 1, "output_format": "png"}
        ratios = next(m.aspect_ratios for m in self.models if m.id == request.model)
        payload["aspect_ratio"] = request.aspect_ratio if request.aspect_ratio in ratios else "1:1"
        if request.model == EDIT_MODEL:
            if not request.input_image_urls:
                raise ProviderError(f"{EDIT_MODEL} needs at least one input image")
            require_reachable_inputs("Fal.ai", self.public_url)
            payload["image_urls"] = list(request.input_image_urls)
        response = await self.http.post(
            f"{self.queue_url}/{request.model}",
            params={"fal_webhook": request.callback_url},
            json=payload,
            headers=self._auth,
        )
        body = self._body(response)
        try:
            handle = {key: str(body[key]) for key in ("status_url", "response_url", "cancel_url")}
            return TaskRef(str(body["request_id"]), handle)
        except (KeyError, TypeError):
            raise ProviderError("Fal.ai answered without a request id and queue URLs", retryable=True) from None

    async def query(self, task: TaskRef) -> TaskUpdate:
        response = await self.http.get(task.handle["status_url"], params={"logs": "1"}, headers=self._auth)
        body = self._body(response)
        status = body.get("status")
        if status == "IN_QUEUE":
            # 0 is next: the app counts places from 1.
            position = body.get("queue_position")
            if isinstance(position, int) and position >= 0:
                place = position + 1
                live = TaskProgress(queue_position=place)
                return TaskUpdate(task.task_id, JobStatus.SUBMITTED, progress=f"position {place} in queue", live=live)
            return TaskUpdate(task.task_id, JobStatus.SUBMITTED, progress="in queue")
        if status == "IN_PROGRESS":
            logs = [str(e.get("message", "")) for e in body.get("logs") or [] if isinstance(e, dict)]
            last = logs[-1] if logs else ""
            live = TaskProgress(percent=percent_from_logs(logs))
            return TaskUpdate(task.task_id, JobStatus.RUNNING, progress=last[:200], live=live)
        if status != "COMPLETED":
            raise ProviderError(f"Fal.ai sent an unknown status {status!r}", retryable=True)
        if body.get("error"):
            kind = f" ({body['error_type']})" if body.get("error_type") else ""
            return TaskUpdate(task.task_id, JobStatus.FAILED, error=f"Fal.ai generation failed: {body['error']}{kind}")
        result = await self.http.get(task.handle["response_url"], headers=self._auth)
        if result.status_code >= 500 or result.status_code == 429:
            raise fal_error(result.status_code, _json_or_none(result))
        return _result_update(task.task_id, _json_or_none(result))

    async def cancel(self, task: TaskRef) -> None:
        """PUT cancel_url; OK, CANCELLATION_REQUESTED, ALREADY_COMPLETED and NOT_FOUND are all fine."""
        await self.http.put(task.handle["cancel_url"], headers=self._auth)

    async def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> TaskUpdate:
        headers = {k.lower(): v for k, v in headers.items()}  # HTTP header names are case-insensitive
        await self._verify(headers, body)
        try:
            payload = json.loads(body)
            request_id = str(payload["request_id"])
            status = payload["status"]
        except (ValueError, KeyError, TypeError) as exc:
            raise WebhookRejected(f"Malformed Fal.ai webhook: {exc}") from exc
        # After a retry the signed id may be the last try's (`gateway_request_id`), not the queue's.
        signed_for = headers.get(HEADER_PREFIX + "request-id")
        if signed_for not in {request_id, payload.get("gateway_request_id")} - {None, ""}:
            raise WebhookRejected("Fal.ai webhook body and signature name different requests", 401)
        delivery_id = headers.get(HEADER_PREFIX + "signature", "")
        if status == "OK" and payload.get("payload") is None and payload.get("payload_error"):
            # The result did not fit in the webhook: the queue still has it.
            return TaskUpdate(request_id, JobStatus.COMPLETED, delivery_id=delivery_id, confirm_with_query=True)
        if status == "OK":
            return replace(_result_update(request_id, payload.get("payload")), delivery_id=delivery_id)
        if status == "ERROR":
            # `payload.detail` says what went wrong; `error` is only e.g. "Invalid status code: 422".
            reason = _detail(payload.get("payload")) or _detail(payload) or "no reason given"
            error = f"Fal.ai generation failed: {reason}"
            return TaskUpdate(request_id, JobStatus.FAILED, error=error, delivery_id=delivery_id)
        raise WebhookRejected(f"Malformed Fal.ai webhook: unknown status {status!r}")

    async def _verify(self, headers: Mapping[str, str], body: bytes) -> None:
        request_id, user_id, timestamp, signature = (
            headers.get(HEADER_PREFIX + name, "") for name in ("request-id", "user-id", "timestamp", "signature")
        )
        if not (request_id and user_id and timestamp and signature):
            raise WebhookRejected("Unsigned Fal.ai webhook", 401)
        require_fresh_timestamp(timestamp, self.clock(), "Fal.ai")
        try:
            signature_bytes = bytes.fromhex(signature)
        except ValueError:
            raise WebhookRejected("Bad Fal.ai webhook signature", 401) from None
        message = "\n".join((request_id, user_id, timestamp, hashlib.sha256(body).hexdigest())).encode()
        for refresh in (False, True):
            for key in await self._jwks(refresh):
                try:
                    key.verify(signature_bytes, message)
                    return
                except InvalidSignature:
                    continue
        raise WebhookRejected("Bad Fal.ai webhook signature", 401)

    async def _jwks(self, refresh: bool) -> list[Ed25519PublicKey]:
        """Fal's signing keys, cached for a day; refetched (at most once a minute) when none verifies."""
        age = self.clock() - self._keys_fetched_at
        if age < JWKS_TTL_S and not (refresh and age > JWKS_REFRESH_ON_MISS_S):
            return self._keys
        try:
            response = await self.http.get(self.jwks_url)
            response.raise_for_status()
            keys = [
                Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(k["x"] + "=" * (-len(k["x"]) % 4)))
                for k in response.json().get("keys", [])
                if k.get("kty") == "OKP" and k.get("crv") == "Ed25519"
            ]
        except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as exc:
            if self._keys:
                return self._keys
            raise WebhookRejected(f"Cannot fetch Fal.ai signing keys ({type(exc).__name__})", 503) from exc
        self._keys, self._keys_fetched_at = keys, self.clock()
        return keys

    def _body(self, response: httpx.Response) -> dict[str, Any]:
        body = _json_or_none(response)
        if response.status_code not in (200, 202) or not isinstance(body, dict):
            raise fal_error(
                response.status_code if response.status_code not in (200, 202) else 502,
                body,
                parse_retry_after(response.headers.get("retry-after")),
            )
        return body


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
