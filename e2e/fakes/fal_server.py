"""A fake Fal.ai queue: a real HTTP server on loopback with its own ED25519 key and JWKS.

Run: `python -m e2e.fakes.fal_server --port N --api-key K`.
Tests steer it through `POST /_fake/config` (time in queue, work time, callbacks,
signing with a wrong key, failing generations) and read `/_fake/requests`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from e2e.fakes.render import render_result

APP_PATH = "fal-ai/nano-banana"  # status/response URLs drop the model's sub-path, as Fal's do
USER_ID = "fake-user"


@dataclass
class Config:
    queue_s: float = 0.3
    delay_s: float = 1.2
    callbacks: bool = True
    wrong_key: bool = False
    fail_generation: bool = False


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
        return JSONResponse(
            {
                "request_id": request_id,
                "gateway_request_id": request_id,
                "response_url": base,
                "status_url": f"{base}/status",
                "cancel_url": f"{base}/cancel",
            }
        )

    async def run(self, request_id: str) -> None:
        item = self.requests[request_id]
        await asyncio.sleep(self.config.queue_s)
        if item.status == "CANCELLED":
            return
        item.status = "IN_PROGRESS"
        item.logs.append({"message": "loading model", "timestamp": str(time.time())})
        await asyncio.sleep(self.config.delay_s)
        item.logs.append({"message": "decoding image", "timestamp": str(time.time())})
        try:
            if self.config.fail_generation:
                raise RuntimeError("the fake was told to fail")
            image = await render_result(
                item.payload["prompt"], item.payload.get("aspect_ratio", "1:1"), item.payload.get("image_urls") or []
            )
            self.images[request_id] = image
            item.result = {
                "images": [
                    {
                        "url": f"{self.base_url}/files/{request_id}.png",
                        "content_type": "image/png",
                        "file_name": f"{request_id}.png",
                        "file_size": len(image),
                    }
                ],
                "description": "",
            }
        except Exception as exc:
            item.error = str(exc)
        item.status = "COMPLETED"
        if self.config.callbacks and item.webhook:
            await self.deliver(item)

    async def deliver(self, item: QueuedRequest) -> None:
        if item.result is not None:
            body_obj: dict[str, Any] = {"status": "OK", "payload": item.result}
        else:
            body_obj = {"status": "ERROR", "payload": None, "error": item.error}
        body = json.dumps({"request_id": item.request_id, "gateway_request_id": item.request_id, **body_obj}).encode()
        stamp = str(int(time.time()))
        message = "\n".join((item.request_id, USER_ID, stamp, hashlib.sha256(body).hexdigest())).encode()
        key = Ed25519PrivateKey.generate() if self.config.wrong_key else self.key
        headers = {
            "content-type": "application/json",
            "x-fal-webhook-request-id": item.request_id,
            "x-fal-webhook-user-id": USER_ID,
            "x-fal-webhook-timestamp": stamp,
            "x-fal-webhook-signature": key.sign(message).hex(),
        }
        assert item.webhook is not None
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                response = await http.post(item.webhook, content=body, headers=headers)
            self.deliveries.append({"request_id": item.request_id, "status": response.status_code})
        except httpx.HTTPError as exc:
            self.deliveries.append({"request_id": item.request_id, "error": type(exc).__name__})

    async def status(self, request: Request) -> Response:
        item = self.requests.get(request.path_params["request_id"])
        if item is None or not self.authorised(request):
            return JSONResponse({"detail": "Not found"}, status_code=404)
        if item.status == "IN_QUEUE":
            queued = [r for r in self.requests.values() if r.status == "IN_QUEUE"]
            return JSONResponse({"status": "IN_QUEUE", "queue_position": queued.index(item)}, status_code=202)
        if item.status == "IN_PROGRESS":
            return JSONResponse({"status": "IN_PROGRESS", "logs": item.logs}, status_code=202)
        return JSONResponse({"status": "COMPLETED", "logs": item.logs, "response_url": ""})

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
        raw = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        return JSONResponse({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "fake"}]})

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
