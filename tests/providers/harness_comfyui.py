"""ComfyUI's HTTP contract mocked with respx, in the shapes of its server.py (the websocket, which
the conformance suite does not need, is the fake server's part: tests/providers/test_comfyui.py)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import respx

from core.contract import JobStatus, Provider, TaskRef
from providers.comfyui import SIGNATURE_HEADER, TIMESTAMP_HEADER, ComfyUIProvider, sign
from providers.local_render import render_text_to_image

BASE = "http://comfy.test"
CHECKPOINT = "sd_xl_base_1.0.safetensors"


class ComfyUIHarness:
    name = "comfyui"
    text_model = f"comfyui/{CHECKPOINT}"
    signs = True

    def __init__(self) -> None:
        self.states: dict[str, JobStatus] = {}
        self.stopped: set[str] = set()
        self.refuse_next = False

    def settings(self) -> dict[str, Any]:
        return {"comfyui_url": BASE}

    def install(self, router: respx.MockRouter, provider: Provider) -> None:
        assert isinstance(provider, ComfyUIProvider)
        self.provider = provider

        async def no_socket() -> None:  # live progress is not the conformance suite's business
            return None

        provider._ensure_socket = no_socket  # type: ignore[method-assign]
        info = {"CheckpointLoaderSimple": {"input": {"required": {"ckpt_name": [[CHECKPOINT], {}]}}}}
        router.get(f"{BASE}/object_info/CheckpointLoaderSimple").respond(json=info)
        router.post(f"{BASE}/prompt").mock(side_effect=self._prompt)
        router.get(url__regex=rf"{BASE}/history/[^/]+$").mock(side_effect=self._history)
        router.get(f"{BASE}/queue").mock(side_effect=self._queue)
        router.post(f"{BASE}/queue").mock(side_effect=self._delete)
        router.post(f"{BASE}/interrupt").mock(side_effect=self._interrupt)
        router.get(url__startswith=f"{BASE}/view").respond(200, content=render_text_to_image("result", "1:1"))

    def _prompt(self, request: httpx.Request) -> httpx.Response:
        if self.refuse_next:
            self.refuse_next = False
            error = {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation"}
            errors = [{"message": "Value not in list", "details": "ckpt_name"}]
            node_errors = {"4": {"errors": errors, "class_type": "CheckpointLoaderSimple"}}
            return httpx.Response(400, json={"error": error, "node_errors": node_errors})
        prompt_id = str(uuid.uuid4())
        self.states[prompt_id] = JobStatus.SUBMITTED
        return httpx.Response(200, json={"prompt_id": prompt_id, "number": len(self.states), "node_errors": {}})

    def _entry(self, prompt_id: str) -> list[Any]:
        return [0, prompt_id, {}, {}, ["9"]]

    def _history(self, request: httpx.Request) -> httpx.Response:
        prompt_id = request.url.path.rsplit("/", 1)[1]
        state = self.states.get(prompt_id)
        if state == JobStatus.COMPLETED:
            images = [{"filename": f"{prompt_id}.png", "subfolder": "", "type": "output"}]
            status = {"status_str": "success", "completed": True, "messages": []}
            return httpx.Response(200, json={prompt_id: {"outputs": {"9": {"images": images}}, "status": status}})
        if state == JobStatus.FAILED:
            error = {"prompt_id": prompt_id, "node_type": "KSampler", "exception_message": "CUDA out of memory"}
            status = {"status_str": "error", "completed": False, "messages": [["execution_error", error]]}
            return httpx.Response(200, json={prompt_id: {"outputs": {}, "status": status}})
        return httpx.Response(200, json={})

    def _queue(self, request: httpx.Request) -> httpx.Response:
        running = [self._entry(p) for p, s in self.states.items() if s == JobStatus.RUNNING]
        pending = [self._entry(p) for p, s in self.states.items() if s == JobStatus.SUBMITTED]
        return httpx.Response(200, json={"queue_running": running, "queue_pending": pending})

    def _delete(self, request: httpx.Request) -> httpx.Response:
        for prompt_id in json.loads(request.content).get("delete", []):
            if self.states.get(prompt_id) == JobStatus.SUBMITTED:
                self.stopped.add(prompt_id)
                del self.states[prompt_id]
        return httpx.Response(200)

    def _interrupt(self, request: httpx.Request) -> httpx.Response:
        prompt_id = json.loads(request.content or b"{}").get("prompt_id")
        if self.states.get(prompt_id) == JobStatus.RUNNING:
            self.stopped.add(prompt_id)
        return httpx.Response(200)

    def cancelled(self, task: TaskRef) -> bool:
        return task.task_id in self.stopped

    def report(self, task: TaskRef, status: JobStatus) -> None:
        self.states[task.task_id] = status

    def webhook(self, task: TaskRef, status: JobStatus, *, forged: bool = False) -> tuple[dict[str, str], bytes]:
        secret = "not-the-secret" if forged else self.provider.secret
        timestamp = str(int(time.time()))
        done = status == JobStatus.COMPLETED
        urls = [f"{BASE}/view?filename={task.task_id}.png&subfolder=&type=output"] if done else []
        body = {
            "prompt_id": task.task_id,
            "status": status.value,
            "result_urls": urls,
            "error": "ComfyUI failed in KSampler: CUDA out of memory" if status == JobStatus.FAILED else None,
        }
        headers = {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(secret, task.task_id, timestamp)}
        return headers, json.dumps(body).encode()

    def make_next_job_fail(self) -> tuple[str, str]:
        self.refuse_next = True
        return "a fox", "ComfyUI refused the workflow (Prompt outputs failed validation)"
