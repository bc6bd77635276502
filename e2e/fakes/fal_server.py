"""A fake Fal.ai queue: a real HTTP server on loopback with its own ED25519 key and JWKS.

Run: `python -m e2e.fakes.fal_server --port N --api-key K`.
Tests steer it through `POST /_fake/config` (time in queue, work time, callbacks,
signing with a wrong key, failing generations) and read `/_fake/requests`.
Its bodies are the documented ones (tests/providers/fixtures/fal): `queue_position`
(0 is next) while IN_QUEUE, `logs` with a progress-bar line per sampler step while
IN_PROGRESS, and a failure is a COMPLETED status with `error` and `error_type`; webhooks are signed with code of its
own and retried 10 times over 2 hours, as Fal.ai documents.
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
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from e2e.fakes.delivery import FAL_WEBHOOKS, deliver, schedule
from e2e.fakes.render import render_result
from e2e.fakes.sampler_logs import STEPS, bar_line
from tests.providers.fixtures import load
from tests.providers.harness_fal import jwk
from tests.providers.signing import fal_headers

APP_PATH = "fal-ai/nano-banana"  # status/response URLs drop the model's sub-path, as Fal's do
USER_ID = "fake-user"


@dataclass
class Config:
    queue_s: float = 0.3
    delay_s: float = 1.2
    callbacks: bool = True
    wrong_key: bool = False
    fail_generation: bool = False
    #: Pauses between webhook retries; None: Fal.ai's documented 10 tries over 2 hours.
    delivery_pauses_s: list[float] | None = None


@dataclass
class QueuedRequest:
    request_id: str
    model: str
    payload: dict[str, Any]
    webhook: str | None
    status: str = "IN_QUEUE"
    logs: list[dict[str, str]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class FakeFal:
    api_key: str
    base_url: str
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    config: Config = field(default_factory=Config)
    requests: dict[str, QueuedRequest] = field(default_factory=dict)
    images: dict[str, bytes] = field(default_factory=dict)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def authorised(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Key {self.api_key}"

    async def submit(self, request: Request) -> Response:
        if not self.authorised(request):
            return JSONResponse({"detail": "Unauthorized"}, status_code=401)
        model = request.path_params["model"]
        if model not in ("fal-ai/nano-banana", "fal-ai/nano-banana/edit"):
            return JSONResponse({"detail": f"Application {model} not found"}, status_code=404)
        payload = await request.json()
        if not isinstance(payload.get("prompt"), str) or (model.endswith("/edit") and not payload.get("image_urls")):
            return JSONResponse({"detail": [{"loc": ["body", "prompt"], "msg": "field required"}]}, status_code=422)
        request_id = str(uuid.uuid4())
        self.requests[request_id] = QueuedRequest(request_id, model, payload, request.query_params.get("fal_webhook"))
        task = asyncio.create_task(self.run(request_id))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        base = f"{self.base_url}/{APP_PATH}/requests/{request_id}"
        body = load("fal", "submit_response")
        body.update(request_id=request_id, gateway_request_id=request_id, response_url=base)
        body.update(status_url=f"{base}/status", cancel_url=f"{base}/cancel")
        return JSONResponse(body)

    async def run(self, request_id: str) -> None:
        item = self.requests[request_id]
        await asyncio.sleep(self.config.queue_s)
        if item.status == "CANCELLED":
            return
        item.status = "IN_PROGRESS"
        item.logs.append({"message": "loading model", "timestamp": str(time.time())})
        started = time.time()
        for step in range(1, STEPS + 1):  # the sampler's progress bar, a line per step
            await asyncio.sleep(self.config.delay_s / STEPS)
            line = bar_line(step, elapsed_s=time.time() - started)
            item.logs.append({"message": line, "timestamp": str(time.time())})
        item.logs.append({"message": "decoding image", "timestamp": str(time.time())})
        try:
            if self.config.fail_generation:
                raise RuntimeError("the fake was told to fail")
            image = await render_result(
                item.payload["prompt"], item.payload.get("aspect_ratio", "1:1"), item.payload.get("image_urls") or []
            )
            self.images[request_id] = image
            item.result = load("fal", "response")
            item.result["images"][0].update(
                url=f"{self.base_url}/files/{request_id}.png", file_name=f"{request_id}.png", file_size=len(image)
            )
        except Exception as exc:
            item.error = str(exc)
        item.status = "COMPLETED"
        if self.config.callbacks and item.webhook:
            await self.deliver(item)

    async def deliver(self, item: QueuedRequest) -> None:
        if item.result is not None:
            body_obj = load("fal", "webhook_ok")
            body_obj["payload"] = item.result
        else:
            body_obj = load("fal", "webhook_error")
            body_obj["payload"] = {"detail": [{"msg": item.error or "failed", "type": "generation_error"}]}
        body_obj.update(request_id=item.request_id, gateway_request_id=item.request_id)
        key = Ed25519PrivateKey.generate() if self.config.wrong_key else self.key
        assert item.webhook is not None
        await deliver(
            item.webhook,
            json.dumps(body_obj).encode(),
            lambda body: fal_headers(key, item.request_id, body, USER_ID),
            schedule(FAL_WEBHOOKS, self.config.delivery_pauses_s),
            self.deliveries,
            {"request_id": item.request_id},
        )

    async def status(self, request: Request) -> Response:
        item = self.requests.get(request.path_params["request_id"])
        if item is None or not self.authorised(request):
            return JSONResponse({"detail": "Not found"}, status_code=404)
        response_url = f"{self.base_url}/{APP_PATH}/requests/{item.request_id}"
        if item.status == "IN_QUEUE":
            queued = [r for r in self.requests.values() if r.status == "IN_QUEUE"]
            body = load("fal", "status_in_queue")
            body.update(queue_position=queued.index(item), response_url=response_url)
            return JSONResponse(body, status_code=202)
        if item.status == "IN_PROGRESS":
            body = load("fal", "status_in_progress")
            body.update(logs=item.logs, response_url=response_url)
            return JSONResponse(body, status_code=202)
        body = load("fal", "status_completed" if item.error is None else "status_completed_error")
        body.update(logs=item.logs, response_url=response_url)
        if item.error is not None:
            body.update(error=item.error, error_type="generation_error")
        return JSONResponse(body)

    async def response(self, request: Request) -> Response:
        item = self.requests.get(request.path_params["request_id"])
        if item is None or not self.authorised(request):
            return JSONResponse({"detail": "Not found"}, status_code=404)
        if item.status != "COMPLETED":
            return JSONResponse({"detail": "Request is still in progress"}, status_code=400)
        if item.result is None:
            return JSONResponse({"detail": [{"msg": item.error or "failed"}]}, status_code=422)
        return JSONResponse(item.result)

    async def cancel(self, request: Request) -> Response:
        item = self.requests.get(request.path_params["request_id"])
        if item is None:
            return JSONResponse({"status": "NOT_FOUND"}, status_code=404)
        if item.status == "COMPLETED":
            return JSONResponse({"status": "ALREADY_COMPLETED"}, status_code=400)
        item.status = "CANCELLED"
        return JSONResponse({"status": "CANCELLATION_REQUESTED"}, status_code=202)

    async def jwks(self, _: Request) -> Response:
        return JSONResponse({"keys": [{**jwk(self.key), "kid": "fake"}]})

    async def file(self, request: Request) -> Response:
        image = self.images.get(request.path_params["request_id"])
        return Response(image, media_type="image/png") if image else Response(status_code=404)

    async def set_config(self, request: Request) -> Response:
        self.config = Config(**(await request.json()))
        return JSONResponse(vars(self.config))

    async def list_requests(self, _: Request) -> Response:
        return JSONResponse(
            {
                "requests": [
                    {"request_id": r.request_id, "model": r.model, "status": r.status, "payload": r.payload}
                    for r in self.requests.values()
                ],
                "deliveries": self.deliveries,
            }
        )

    async def health(self, _: Request) -> Response:
        return JSONResponse({"ok": True})

    def app(self) -> Starlette:
        requests = f"/{APP_PATH}/requests/{{request_id}}"
        return Starlette(
            routes=[
                Route("/.well-known/jwks.json", self.jwks),
                Route("/_fake/config", self.set_config, methods=["POST"]),
                Route("/_fake/requests", self.list_requests),
                Route("/_fake/health", self.health),
                Route("/files/{request_id}.png", self.file),
                Route(f"{requests}/status", self.status),
                Route(f"{requests}/cancel", self.cancel, methods=["PUT"]),
                Route(requests, self.response),
                Route("/{model:path}", self.submit, methods=["POST"]),
            ]
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", required=True)
    args = parser.parse_args()
    fake = FakeFal(api_key=args.api_key, base_url=f"http://127.0.0.1:{args.port}")
    uvicorn.run(fake.app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
