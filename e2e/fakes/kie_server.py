"""A fake KIE.ai: a real HTTP server on loopback speaking the public contract.

Run: `python -m e2e.fakes.kie_server --port N --api-key K [--hmac-key H]`.
Tests steer it through `POST /_fake/config` (delay, callbacks on/off, late and duplicate
callbacks, a forced error code, failing generations) and read `/_fake/tasks`.
Its bodies are the documented ones (tests/providers/fixtures/kie), it signs callbacks by
the documented algorithm with code of its own, retries them only as KIE.ai documents,
and answers 429 beyond 20 new tasks per 10 s, which KIE.ai does not queue.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from e2e.fakes.delivery import KIE_CALLBACKS, deliver, schedule
from e2e.fakes.render import render_result
from providers.kie import EDIT_MODEL, TEXT_MODEL
from tests.providers.fixtures import load
from tests.providers.signing import kie_headers

#: Documented: at most 20 new tasks in any 10 s per account.
RATE_LIMIT, RATE_WINDOW_S = 20, 10.0


@dataclass
class Config:
    delay_s: float = 1.5
    callbacks: bool = True
    duplicate_callbacks: bool = False
    #: A late provider: the first callback goes out this long after the result is ready.
    callback_delay_s: float = 0.0
    #: Every API call (create, recordInfo) answers this error code: the provider is down.
    error_code: int | None = None
    #: Sent as `Retry-After` with that error: when the provider asks to be tried again.
    retry_after_s: int | None = None
    fail_generation: bool = False
    #: For this long after creation recordInfo answers 422 "recordInfo is null", as KIE.ai can.
    record_lag_s: float = 0.5
    #: Pauses between callback retries; None: KIE.ai's documented few tries.
    delivery_pauses_s: list[float] | None = None
    #: Generations stay at "generating" until a config without it comes: a test's own moment.
    hold: bool = False
    #: Results as heavy as a real one's (True) or ~10 KB drawings (False); None: as the
    #: process's `FAKE_PHOTO_WEIGHT` says. The bench measures both with one running fake.
    photo_weight: bool | None = None


@dataclass
class FakeKie:
    api_key: str
    hmac_key: str
    base_url: str
    config: Config = field(default_factory=Config)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    images: dict[str, bytes] = field(default_factory=dict)
    callbacks_sent: list[dict[str, Any]] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    created_at: list[float] = field(default_factory=list)

    def over_rate_limit(self) -> bool:
        now = time.monotonic()
        self.created_at = [t for t in self.created_at if now - t < RATE_WINDOW_S]
        return len(self.created_at) >= RATE_LIMIT

    def error(self, code: int, msg: str) -> JSONResponse:
        return JSONResponse({"code": code, "msg": msg, "data": None})

    async def create_task(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return self.error(401, "Unauthorized")
        if self.config.error_code:
            forced = self.error(self.config.error_code, "forced by the test")
            if self.config.retry_after_s is not None:
                forced.headers["Retry-After"] = str(self.config.retry_after_s)
            return forced
        if self.over_rate_limit():
            return self.error(429, "Rate limit exceeded: 20 new tasks per 10 seconds")
        try:
            body = await request.json()
            model, callback, payload = body["model"], body["callBackUrl"], body["input"]
            prompt = payload["prompt"]
        except (ValueError, KeyError, TypeError):
            return self.error(422, "Invalid request body")
        if model not in (TEXT_MODEL, EDIT_MODEL) or not isinstance(prompt, str) or len(prompt) > 5000:
            return self.error(422, "Invalid model or prompt")
        urls = payload.get("image_urls") or []
        if model == EDIT_MODEL and not 1 <= len(urls) <= 10:
            return self.error(422, "image_urls must hold 1 to 10 images")
        self.created_at.append(time.monotonic())
        task_id = uuid.uuid4().hex
        now = int(time.time() * 1000)
        record = load("kie", "record_info_waiting")["data"]
        record.update(taskId=task_id, model=model, param=json.dumps(body), createTime=now, updateTime=now)
        self.records[task_id] = record
        task = asyncio.create_task(self.run(task_id, callback, prompt, payload.get("aspect_ratio", "1:1"), urls))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        created = load("kie", "create_task_response")
        created["data"]["taskId"] = task_id
        return JSONResponse(created)

    async def run(self, task_id: str, callback: str, prompt: str, ratio: str, urls: list[str]) -> None:
        record = self.records[task_id]
        await asyncio.sleep(self.config.delay_s / 2)
        record.update(state="generating", updateTime=int(time.time() * 1000))
        await asyncio.sleep(self.config.delay_s / 2)
        while self.config.hold:
            await asyncio.sleep(0.05)
        try:
            if self.config.fail_generation:
                raise RuntimeError("generation failed on purpose")
            self.images[task_id] = await render_result(prompt, ratio, urls, self.config.photo_weight)
            result = {"resultUrls": [f"{self.base_url}/files/{task_id}.png"]}
            record.update(state="success", resultJson=json.dumps(result))
        except Exception as exc:
            record.update(state="fail", failCode="500", failMsg=str(exc))
        record.update(completeTime=int(time.time() * 1000), updateTime=int(time.time() * 1000))
        if self.config.callbacks:
            await asyncio.sleep(self.config.callback_delay_s)
            for _ in range(2 if self.config.duplicate_callbacks else 1):
                await self.deliver(callback, record)

    async def deliver(self, callback: str, record: dict[str, Any]) -> None:
        """The documented callback body, signed per try (when a key is set), retried as documented."""
        body = load("kie", "callback_success" if record["state"] == "success" else "callback_fail")
        body["data"].update(record)

        def sign(_: bytes) -> dict[str, str]:
            if not self.hmac_key:
                return {"X-Webhook-Timestamp": str(int(time.time()))}
            return kie_headers(self.hmac_key, record["taskId"])

        retries = schedule(KIE_CALLBACKS, self.config.delivery_pauses_s)
        entry = {"taskId": record["taskId"]}
        await deliver(callback, json.dumps(body).encode(), sign, retries, self.callbacks_sent, entry)

    async def record_info(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return self.error(401, "Unauthorized")
        if self.config.error_code:
            return self.error(self.config.error_code, "forced by the test")
        record = self.records.get(request.query_params.get("taskId", ""))
        if record is None:
            return self.error(404, "Task not found")
        if time.time() * 1000 - record["createTime"] < self.config.record_lag_s * 1000:
            return JSONResponse(load("kie", "record_info_null"))
        return JSONResponse({"code": 200, "msg": "success", "data": record})

    async def file(self, request: Request) -> Response:
        image = self.images.get(request.path_params["task_id"])
        return Response(image, media_type="image/png") if image else Response(status_code=404)

    async def add_finished(self, request: Request) -> Response:
        """Tasks that finished with `result_url`, as if created earlier: a benchmark's callbacks
        then confirm with recordInfo like real ones, without 400 renders first."""
        body = await request.json()
        now = int(time.time() * 1000) - int(self.config.record_lag_s * 1000) - 1
        for task_id in body["task_ids"]:
            record = load("kie", "record_info_waiting")["data"]
            result = json.dumps({"resultUrls": [body["result_url"]]})
            record.update(taskId=task_id, model=TEXT_MODEL, createTime=now, updateTime=now, completeTime=now)
            record.update(state="success", resultJson=result)
            self.records[task_id] = record
        return JSONResponse({"added": len(body["task_ids"])})

    async def set_config(self, request: Request) -> Response:
        self.config = Config(**(await request.json()))
        return JSONResponse(vars(self.config))

    async def list_tasks(self, _: Request) -> Response:
        return JSONResponse({"records": list(self.records.values()), "callbacks": self.callbacks_sent})

    async def health(self, _: Request) -> Response:
        return JSONResponse({"ok": True})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/v1/jobs/createTask", self.create_task, methods=["POST"]),
                Route("/api/v1/jobs/recordInfo", self.record_info),
                Route("/files/{task_id}.png", self.file),
                Route("/_fake/config", self.set_config, methods=["POST"]),
                Route("/_fake/finished", self.add_finished, methods=["POST"]),
                Route("/_fake/tasks", self.list_tasks),
                Route("/_fake/health", self.health),
            ]
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--hmac-key", default="")
    args = parser.parse_args()
    fake = FakeKie(api_key=args.api_key, hmac_key=args.hmac_key, base_url=f"http://127.0.0.1:{args.port}")
    uvicorn.run(fake.app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
