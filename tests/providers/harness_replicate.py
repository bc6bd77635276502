"""Replicate mocked with respx from its documented prediction bodies, with a Standard Webhooks secret."""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx
import respx

from core.contract import JobStatus, Provider, TaskRef
from providers.replicate import TEXT_MODEL
from tests.providers.fixtures import load
from tests.providers.harness import result_url
from tests.providers.signing import standard_webhook_headers

BASE = "https://replicate.test"
SECRET = load("replicate", "default_secret")["key"]
OTHER_SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
PREDICTIONS = {
    JobStatus.SUBMITTED: "prediction_starting",
    JobStatus.RUNNING: "prediction_processing",
    JobStatus.COMPLETED: "prediction_succeeded",
    JobStatus.FAILED: "prediction_failed",
    JobStatus.CANCELLED: "prediction_canceled",
}


def prediction(task: TaskRef, status: JobStatus) -> dict[str, Any]:
    """The documented prediction object of a task in `status`."""
    body = load("replicate", PREDICTIONS[status])
    body["id"] = task.task_id
    body["urls"] = {
        "get": f"{BASE}/v1/predictions/{task.task_id}",
        "cancel": f"{BASE}/v1/predictions/{task.task_id}/cancel",
    }
    if status == JobStatus.COMPLETED:
        body["output"] = result_url(task)
    return body


class ReplicateHarness:
    name = "replicate"
    text_model = TEXT_MODEL
    signs = True

    def __init__(self) -> None:
        self.reported: dict[str, JobStatus] = {}
        self._ids = itertools.count(1)
        self._deliveries = itertools.count(1)

    def settings(self) -> dict[str, Any]:
        return {"replicate_api_token": "r8_test", "replicate_base_url": BASE}

    def install(self, router: respx.MockRouter, provider: Provider) -> None:
        self.create = router.post(f"{BASE}/v1/models/google/nano-banana/predictions").mock(side_effect=self._create)
        router.get(url__regex=rf"{BASE}/v1/predictions/[^/]+$").mock(side_effect=self._get)
        router.post(url__regex=rf"{BASE}/v1/predictions/[^/]+/cancel$").mock(side_effect=self._cancel)
        router.get(f"{BASE}/v1/webhooks/default/secret").respond(json=load("replicate", "default_secret"))

    def _create(self, request: httpx.Request) -> httpx.Response:
        task = TaskRef(f"rep{next(self._ids)}")
        self.reported[task.task_id] = JobStatus.SUBMITTED
        return httpx.Response(201, json=prediction(task, JobStatus.SUBMITTED))

    def _task(self, request: httpx.Request) -> TaskRef:
        return TaskRef(request.url.path.split("/predictions/", 1)[1].split("/", 1)[0])

    def _get(self, request: httpx.Request) -> httpx.Response:
        task = self._task(request)
        if task.task_id not in self.reported:
            return httpx.Response(404, json={"detail": "Not found.", "status": 404})
        return httpx.Response(200, json=prediction(task, self.reported[task.task_id]))

    def _cancel(self, request: httpx.Request) -> httpx.Response:
        task = self._task(request)
        self.reported[task.task_id] = JobStatus.CANCELLED
        return httpx.Response(200, json=prediction(task, JobStatus.CANCELLED))

    def cancelled(self, task: TaskRef) -> bool:
        return self.reported.get(task.task_id) == JobStatus.CANCELLED

    def report(self, task: TaskRef, status: JobStatus) -> None:
        self.reported[task.task_id] = status

    def webhook(self, task: TaskRef, status: JobStatus, *, forged: bool = False) -> tuple[dict[str, str], bytes]:
        body = json.dumps(prediction(task, status)).encode()
        msg_id = f"msg_{task.task_id}_{next(self._deliveries)}"
        return standard_webhook_headers(OTHER_SECRET if forged else SECRET, msg_id, body), body

    def make_next_job_fail(self) -> tuple[str, str]:
        self.create.mock(return_value=httpx.Response(422, json=load("replicate", "error_422")))
        return "a fox", "Invalid type. Expected: string"
