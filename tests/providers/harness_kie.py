"""KIE.ai mocked with respx from its documented bodies, answering what the suite steers."""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx
import respx

from core.contract import JobStatus, Provider, TaskRef
from providers.kie import TEXT_MODEL
from tests.providers.fixtures import load
from tests.providers.harness import result_url
from tests.providers.signing import kie_headers

BASE = "https://kie.test"
HMAC_KEY = "conformance-hmac"
RECORDS = {
    JobStatus.SUBMITTED: "record_info_waiting",
    JobStatus.RUNNING: "record_info_waiting",
    JobStatus.COMPLETED: "record_info_success",
    JobStatus.FAILED: "record_info_fail",
}


def record(task: TaskRef, status: JobStatus) -> dict[str, Any]:
    """recordInfo's documented answer for a task in `status`."""
    body = load("kie", RECORDS[status])
    body["data"]["taskId"] = task.task_id
    if status == JobStatus.RUNNING:
        body["data"]["state"] = "generating"
    if status == JobStatus.COMPLETED:
        body["data"]["resultJson"] = json.dumps({"resultUrls": [result_url(task)]})
    return body


def callback(task: TaskRef, status: JobStatus) -> bytes:
    """The documented callback body for a finished task."""
    body = load("kie", "callback_success" if status == JobStatus.COMPLETED else "callback_fail")
    body["data"].update(record(task, status)["data"])
    return json.dumps(body).encode()


class KieHarness:
    name = "kie"
    text_model = TEXT_MODEL
    signs = True

    def __init__(self) -> None:
        self.reported: dict[str, JobStatus] = {}
        self._ids = itertools.count(1)

    def settings(self) -> dict[str, Any]:
        return {"kie_api_key": "k", "kie_base_url": BASE, "kie_webhook_hmac_key": HMAC_KEY}

    def install(self, router: respx.MockRouter, provider: Provider) -> None:
        self.create = router.post(f"{BASE}/api/v1/jobs/createTask").mock(side_effect=self._create)
        router.get(f"{BASE}/api/v1/jobs/recordInfo").mock(side_effect=self._record)

    def cancelled(self, task: TaskRef) -> bool:
        return False  # KIE.ai documents no cancel endpoint: there is nothing to ask

    def _create(self, request: httpx.Request) -> httpx.Response:
        task_id = f"kie-{next(self._ids)}"
        self.reported[task_id] = JobStatus.SUBMITTED
        body = load("kie", "create_task_response")
        body["data"]["taskId"] = task_id
        return httpx.Response(200, json=body)

    def _record(self, request: httpx.Request) -> httpx.Response:
        task_id = request.url.params["taskId"]
        if task_id not in self.reported:
            return httpx.Response(200, json={"code": 404, "msg": "not found"})
        return httpx.Response(200, json=record(TaskRef(task_id), self.reported[task_id]))

    def report(self, task: TaskRef, status: JobStatus) -> None:
        self.reported[task.task_id] = status

    def webhook(self, task: TaskRef, status: JobStatus, *, forged: bool = False) -> tuple[dict[str, str], bytes]:
        return kie_headers("wrong-key" if forged else HMAC_KEY, task.task_id), callback(task, status)

    def make_next_job_fail(self) -> tuple[str, str]:
        self.create.mock(return_value=httpx.Response(200, json={"code": 402, "msg": "Credits insufficient"}))
        return "a fox", "insufficient credits"
