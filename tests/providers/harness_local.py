"""The local provider is its own fake: the harness steers its task table directly."""

from __future__ import annotations

import json
from typing import Any

import respx

from core.contract import JobStatus, Provider, TaskRef
from providers.local import FAIL_FLAG, LocalProvider
from tests.providers.harness import result_url
from tests.providers.signing import local_headers


class LocalHarness:
    name = "local"
    text_model = "local/sketch"
    signs = True

    def settings(self) -> dict[str, Any]:
        return {"local_delay_s": 3600}  # its own worker stays out of the way unless asked

    def install(self, router: respx.MockRouter, provider: Provider) -> None:
        assert isinstance(provider, LocalProvider)
        self.provider = provider
        self.stopped: set[str] = set()
        stop = provider.cancel

        async def cancel(task: TaskRef) -> None:  # its "API" is in-process: note the call, then make it
            self.stopped.add(task.task_id)
            await stop(task)

        provider.cancel = cancel  # type: ignore[method-assign]

    def cancelled(self, task: TaskRef) -> bool:
        return task.task_id in self.stopped

    def report(self, task: TaskRef, status: JobStatus) -> None:
        urls = (result_url(task),) if status == JobStatus.COMPLETED else ()
        error = "local failure" if status == JobStatus.FAILED else None
        self.provider._update(task.task_id, [], status=status.value, error=error, result_url=next(iter(urls), None))

    def webhook(self, task: TaskRef, status: JobStatus, *, forged: bool = False) -> tuple[dict[str, str], bytes]:
        secret = "not-the-secret" if forged else self.provider.secret
        urls = [result_url(task)] if status == JobStatus.COMPLETED else []
        body = {
            "task_id": task.task_id,
            "status": status.value,
            "result_urls": urls,
            "error": "local failure" if status == JobStatus.FAILED else None,
        }
        return local_headers(secret, task.task_id), json.dumps(body).encode()

    def make_next_job_fail(self) -> tuple[str, str]:
        self.provider.delay_s = 0
        return f"please {FAIL_FLAG}", FAIL_FLAG
