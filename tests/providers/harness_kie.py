"""KIE.ai mocked with respx, answering from a table the suite steers."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import httpx
import respx

from core.contract import JobStatus, Provider, TaskRef
from providers.kie import TEXT_MODEL, sign
from tests.providers.harness import result_url

BASE = "https://kie.test"
HMAC_KEY = "conformance-hmac"
STATES = {
    JobStatus.SUBMITTED: "queuing",
    JobStatus.RUNNING: "generating",
    JobStatus.COMPLETED: "success",
    JobStatus.FAILED: "fail",
}


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

    def _create(self, request: httpx.Request) -> httpx.Response:
        task_id = f"kie-{next(self._ids)}"
        self.reported[task_id] = JobStatus.SUBMITTED
        return httpx.Response(200, json={"code": 200, "msg": "success", "data": {"taskId": task_id}})

    def _record(self, request: httpx.Request) -> httpx.Response:
        task_id = request.url.params["taskId"]
        if task_id not in self.reported:
            return httpx.Response(200, json={"code": 404, "msg": "not found"})
        return httpx.Response(200, json={"code": 200, "data": self._data(TaskRef(task_id), self.reported[task_id])})

    def _data(self, task: TaskRef, status: JobStatus) -> dict[str, Any]:
        data: dict[str, Any] = {"taskId": task.task_id, "state": STATES[status]}
        if status == JobStatus.COMPLETED:
            data["resultJson"] = json.dumps({"resultUrls": [result_url(task)]})
        if status == JobStatus.FAILED:
            data.update(failCode="500", failMsg="kie failure")
        return data

    def report(self, task: TaskRef, status: JobStatus) -> None:
        self.reported[task.task_id] = status

    def webhook(self, task: TaskRef, status: JobStatus, *, forged: bool = False) -> tuple[dict[str, str], bytes]:
        stamp = str(int(time.time()))
        key = "wrong-key" if forged else HMAC_KEY
        headers = {"x-webhook-timestamp": stamp, "x-webhook-signature": sign(key, task.task_id, stamp)}
        return headers, json.dumps({"code": 200, "msg": "success", "data": self._data(task, status)}).encode()

    def make_next_job_fail(self) -> tuple[str, str]:
        self.create.mock(return_value=httpx.Response(200, json={"code": 402, "msg": "Credits insufficient"}))
        return "a fox", "insufficient credits"
