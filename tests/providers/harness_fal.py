"""Fal.ai's queue mocked with respx, with a real ED25519 key pair and JWKS."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import time
from typing import Any

import httpx
import respx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from core.contract import JobStatus, Provider, TaskRef
from providers.fal import TEXT_MODEL
from tests.providers.harness import result_url

QUEUE = "https://fal.test"
JWKS = "https://fal.test/.well-known/jwks.json"
STATUS = {
    JobStatus.SUBMITTED: "IN_QUEUE",
    JobStatus.RUNNING: "IN_PROGRESS",
    JobStatus.COMPLETED: "COMPLETED",
    JobStatus.FAILED: "COMPLETED",
}


def jwk(key: Ed25519PrivateKey) -> dict[str, str]:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode()}


def signed_headers(
    key: Ed25519PrivateKey, request_id: str, body: bytes, user_id: str = "user-1", now: float | None = None
) -> dict[str, str]:
    stamp = str(int(time.time() if now is None else now))
    message = "\n".join((request_id, user_id, stamp, hashlib.sha256(body).hexdigest())).encode()
    return {
        "x-fal-webhook-request-id": request_id,
        "x-fal-webhook-user-id": user_id,
        "x-fal-webhook-timestamp": stamp,
        "x-fal-webhook-signature": key.sign(message).hex(),
    }


class FalHarness:
    name = "fal"
    text_model = TEXT_MODEL
    signs = True

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.reported: dict[str, JobStatus] = {}
        self._ids = itertools.count(1)

    def settings(self) -> dict[str, Any]:
        return {"fal_key": "k", "fal_queue_url": QUEUE, "fal_jwks_url": JWKS}

    def install(self, router: respx.MockRouter, provider: Provider) -> None:
        router.get(JWKS).respond(json={"keys": [jwk(self.key)]})
        self.create = router.post(f"{QUEUE}/{TEXT_MODEL}").mock(side_effect=self._create)
        router.get(url__regex=rf"{QUEUE}/fal-ai/nano-banana/requests/[^/]+/status").mock(side_effect=self._status)
        router.get(url__regex=rf"{QUEUE}/fal-ai/nano-banana/requests/[^/]+$").mock(side_effect=self._result)
        router.put(url__regex=rf"{QUEUE}/fal-ai/nano-banana/requests/[^/]+/cancel").respond(
            202, json={"status": "CANCELLATION_REQUESTED"}
        )

    def _create(self, request: httpx.Request) -> httpx.Response:
        request_id = f"fal-{next(self._ids)}"
        self.reported[request_id] = JobStatus.SUBMITTED
        base = f"{QUEUE}/fal-ai/nano-banana/requests/{request_id}"
        return httpx.Response(
            200,
            json={
                "request_id": request_id,
                "response_url": base,
                "status_url": f"{base}/status",
                "cancel_url": f"{base}/cancel",
            },
        )

    def _request_id(self, request: httpx.Request) -> str:
        return request.url.path.split("/requests/", 1)[1].split("/", 1)[0]

    def _status(self, request: httpx.Request) -> httpx.Response:
        status = self.reported[self._request_id(request)]
        body: dict[str, Any] = {"status": STATUS[status]}
        if status == JobStatus.SUBMITTED:
            body["queue_position"] = 2
        if status == JobStatus.RUNNING:
            body["logs"] = [{"message": "step 3/8"}]
        return httpx.Response(200 if STATUS[status] == "COMPLETED" else 202, json=body)

    def _result(self, request: httpx.Request) -> httpx.Response:
        task = TaskRef(self._request_id(request))
        if self.reported[task.task_id] == JobStatus.FAILED:
            return httpx.Response(422, json={"detail": [{"msg": "fal failure"}]})
        return httpx.Response(200, json={"images": [{"url": result_url(task), "content_type": "image/png"}]})

    def report(self, task: TaskRef, status: JobStatus) -> None:
        self.reported[task.task_id] = status

    def webhook(self, task: TaskRef, status: JobStatus, *, forged: bool = False) -> tuple[dict[str, str], bytes]:
        if status == JobStatus.COMPLETED:
            payload: dict[str, Any] = {"status": "OK", "payload": {"images": [{"url": result_url(task)}]}}
        elif status == JobStatus.FAILED:
            payload = {"status": "ERROR", "payload": None, "error": "fal failure"}
        else:
            raise ValueError("Fal.ai sends webhooks only for finished requests")
        body = json.dumps({"request_id": task.task_id, "gateway_request_id": task.task_id, **payload}).encode()
        key = Ed25519PrivateKey.generate() if forged else self.key
        return signed_headers(key, task.task_id, body), body

    def make_next_job_fail(self) -> tuple[str, str]:
        self.create.mock(return_value=httpx.Response(422, json={"detail": [{"msg": "prompt is not allowed"}]}))
        return "a fox", "prompt is not allowed"
