"""Fal.ai's queue mocked with respx, with a real ED25519 key pair and JWKS."""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

import httpx
import respx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from core.contract import JobStatus, Provider, TaskRef
from providers.fal import TEXT_MODEL
from tests.providers.fixtures import load
from tests.providers.harness import result_url
from tests.providers.signing import fal_headers

QUEUE = "https://fal.test"
JWKS = "https://fal.test/.well-known/jwks.json"
#: The documented status body for each state (a failure is COMPLETED with `error`).
STATUS_BODIES = {
    JobStatus.SUBMITTED: "status_in_queue",
    JobStatus.RUNNING: "status_in_progress",
    JobStatus.COMPLETED: "status_completed",
    JobStatus.FAILED: "status_completed_error",
}


def jwk(key: Ed25519PrivateKey) -> dict[str, str]:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode()}


class FalHarness:
    name = "fal"
    text_model = TEXT_MODEL
    signs = True

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.reported: dict[str, JobStatus] = {}
        self.stopped: set[str] = set()
        self._ids = itertools.count(1)

    def settings(self) -> dict[str, Any]:
        return {"fal_key": "k", "fal_queue_url": QUEUE, "fal_jwks_url": JWKS}

    def install(self, router: respx.MockRouter, provider: Provider) -> None:
        router.get(JWKS).respond(json={"keys": [jwk(self.key)]})
        self.create = router.post(f"{QUEUE}/{TEXT_MODEL}").mock(side_effect=self._create)
        router.get(url__regex=rf"{QUEUE}/fal-ai/nano-banana/requests/[^/]+/status").mock(side_effect=self._status)
        router.get(url__regex=rf"{QUEUE}/fal-ai/nano-banana/requests/[^/]+$").mock(side_effect=self._result)
        router.put(url__regex=rf"{QUEUE}/fal-ai/nano-banana/requests/[^/]+/cancel").mock(side_effect=self._cancel)

    def _cancel(self, request: httpx.Request) -> httpx.Response:
        self.stopped.add(self._request_id(request))
        return httpx.Response(202, json={"status": "CANCELLATION_REQUESTED"})

    def cancelled(self, task: TaskRef) -> bool:
        return task.task_id in self.stopped

    def _create(self, request: httpx.Request) -> httpx.Response:
        request_id = f"fal-{next(self._ids)}"
        self.reported[request_id] = JobStatus.SUBMITTED
        base = f"{QUEUE}/fal-ai/nano-banana/requests/{request_id}"
        body = load("fal", "submit_response")
        body.update(request_id=request_id, gateway_request_id=request_id, response_url=base)
        body.update(status_url=f"{base}/status", cancel_url=f"{base}/cancel")
        return httpx.Response(200, json=body)

    def _request_id(self, request: httpx.Request) -> str:
        return request.url.path.split("/requests/", 1)[1].split("/", 1)[0]

    def _status(self, request: httpx.Request) -> httpx.Response:
        status = self.reported[self._request_id(request)]
        body = load("fal", STATUS_BODIES[status])
        if status == JobStatus.SUBMITTED:
            body["queue_position"] = 2
        return httpx.Response(200 if body["status"] == "COMPLETED" else 202, json=body)

    def _result(self, request: httpx.Request) -> httpx.Response:
        task = TaskRef(self._request_id(request))
        body = load("fal", "response")
        body["images"][0]["url"] = result_url(task)
        return httpx.Response(200, json=body)

    def report(self, task: TaskRef, status: JobStatus) -> None:
        self.reported[task.task_id] = status

    def webhook(self, task: TaskRef, status: JobStatus, *, forged: bool = False) -> tuple[dict[str, str], bytes]:
        if status == JobStatus.COMPLETED:
            payload = load("fal", "webhook_ok")
            payload["payload"]["images"][0]["url"] = result_url(task)
        elif status == JobStatus.FAILED:
            payload = load("fal", "webhook_error")
        else:
            raise ValueError("Fal.ai sends webhooks only for finished requests")
        payload["request_id"] = payload["gateway_request_id"] = task.task_id
        body = json.dumps(payload).encode()
        key = Ed25519PrivateKey.generate() if forged else self.key
        return fal_headers(key, task.task_id, body), body

    def make_next_job_fail(self) -> tuple[str, str]:
        self.create.mock(return_value=httpx.Response(422, json={"detail": [{"msg": "prompt is not allowed"}]}))
        return "a fox", "prompt is not allowed"
