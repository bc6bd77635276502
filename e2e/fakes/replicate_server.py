"""A fake Replicate: a real HTTP server on loopback speaking the predictions API.

Run: `python -m e2e.fakes.replicate_server --port N --api-key TOKEN`.
Predictions are the documented objects (tests/providers/fixtures/replicate), whose `logs`
grow by a progress-bar line per sampler step while processing; webhooks are
signed by the Standard Webhooks scheme with code of its own, using the secret it serves at
`GET /v1/webhooks/default/secret`, and retried for about a minute as Replicate documents.
Tests steer it through `POST /_fake/config` (work time, webhooks on/off, signing with
another secret, failing predictions) and read `/_fake/predictions`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from e2e.fakes.delivery import REPLICATE_WEBHOOKS, deliver, schedule
from e2e.fakes.render import render_result
from e2e.fakes.sampler_logs import STEPS, bar_line
from tests.providers.fixtures import load
from tests.providers.signing import standard_webhook_headers

MODELS = ("google/nano-banana",)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@dataclass
class Config:
    delay_s: float = 1.2
    webhooks: bool = True
    wrong_secret: bool = False
    fail_generation: bool = False
    #: Pauses between webhook retries; None: Replicate's documented minute of retries.
    delivery_pauses_s: list[float] | None = None
    #: How a create is answered: 201 Created, or the documented 202 Accepted (same body).
    create_status: int = 201
    #: Send each delivered webhook once more, identical (an at-least-once sender's duplicate).
    duplicate_deliveries: bool = False


@dataclass
class FakeReplicate:
    api_token: str
    base_url: str
    secret: str = field(default_factory=new_secret)
    config: Config = field(default_factory=Config)
    predictions: dict[str, dict[str, Any]] = field(default_factory=dict)
    webhooks: dict[str, str] = field(default_factory=dict)
    images: dict[str, bytes] = field(default_factory=dict)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def authorised(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.api_token}"

    def problem(self, status: int, detail: str, title: str = "") -> JSONResponse:
        return JSONResponse({"title": title or detail, "detail": detail, "status": status}, status_code=status)

    async def create(self, request: Request) -> Response:
        if not self.authorised(request):
            return self.problem(401, "You did not pass a valid authentication token", "Unauthenticated")
        model = f"{request.path_params['owner']}/{request.path_params['name']}"
        if model not in MODELS:
            return self.problem(404, f"Model {model} not found", "Not found")
        try:
            body = await request.json()
            model_input = body["input"]
            prompt = model_input["prompt"]
        except (ValueError, KeyError, TypeError):
            return self.problem(422, "- input: prompt is required", "Input validation failed")
        if not isinstance(prompt, str) or not isinstance(model_input.get("image_input", []), list):
            return self.problem(422, "- input.prompt: Invalid type. Expected: string", "Input validation failed")
        prediction_id = uuid.uuid4().hex[:26]
        prediction = load("replicate", "prediction_starting")
        prediction.update(
            id=prediction_id,
            model=model,
            input=model_input,
            created_at=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            urls={
                "get": f"{self.base_url}/v1/predictions/{prediction_id}",
                "cancel": f"{self.base_url}/v1/predictions/{prediction_id}/cancel",
                "web": f"{self.base_url}/p/{prediction_id}",
            },
        )
        self.predictions[prediction_id] = prediction
        webhook = body.get("webhook")
        if isinstance(webhook, str) and "completed" in (body.get("webhook_events_filter") or ["completed"]):
            self.webhooks[prediction_id] = webhook
        task = asyncio.create_task(self.run(prediction_id))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return JSONResponse(prediction, status_code=self.config.create_status)

    async def run(self, prediction_id: str) -> None:
        prediction = self.predictions[prediction_id]
        await asyncio.sleep(self.config.delay_s / 3)
        if prediction["status"] != "starting":
            return  # canceled
        prediction.update(status="processing", logs="Running prediction...\n")
        started = time.time()
        for step in range(1, STEPS + 1):  # the sampler's progress bar, a line per step
            await asyncio.sleep(self.config.delay_s * 2 / 3 / STEPS)
            if prediction["status"] != "processing":
                return  # canceled
            prediction["logs"] += bar_line(step, elapsed_s=time.time() - started) + "\n"
        model_input = prediction["input"]
        try:
            if self.config.fail_generation:
                raise RuntimeError("E005: the fake was told to fail")
            self.images[prediction_id] = await render_result(
                model_input["prompt"], model_input.get("aspect_ratio", "1:1"), model_input.get("image_input") or []
            )
            prediction.update(status="succeeded", output=f"{self.base_url}/files/{prediction_id}.png")
        except Exception as exc:
            prediction.update(status="failed", error=str(exc))
        prediction.update(
            logs=prediction["logs"] + "Done\n", completed_at=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        )
        await self.notify(prediction_id)

    async def notify(self, prediction_id: str) -> None:
        """The `completed` webhook: the prediction itself, one message id for every try."""
        webhook = self.webhooks.get(prediction_id)
        if webhook is None or not self.config.webhooks:
            return
        secret = new_secret() if self.config.wrong_secret else self.secret
        msg_id = f"msg_{uuid.uuid4().hex}"
        await deliver(
            webhook,
            json.dumps(self.predictions[prediction_id]).encode(),
            lambda body: standard_webhook_headers(secret, msg_id, body),
            schedule(REPLICATE_WEBHOOKS, self.config.delivery_pauses_s),
            self.deliveries,
            {"prediction_id": prediction_id, "webhook_id": msg_id},
            duplicate=self.config.duplicate_deliveries,
        )

    async def get(self, request: Request) -> Response:
        if not self.authorised(request):
            return self.problem(401, "You did not pass a valid authentication token", "Unauthenticated")
        prediction = self.predictions.get(request.path_params["prediction_id"])
        return JSONResponse(prediction) if prediction else self.problem(404, "Not found.")

    async def cancel(self, request: Request) -> Response:
        if not self.authorised(request):
            return self.problem(401, "You did not pass a valid authentication token", "Unauthenticated")
        prediction_id = request.path_params["prediction_id"]
        prediction = self.predictions.get(prediction_id)
        if prediction is None:
            return self.problem(404, "Not found.")
        if prediction["status"] in ("starting", "processing"):
            prediction.update(status="canceled", completed_at=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()))
            task = asyncio.create_task(self.notify(prediction_id))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return JSONResponse(prediction)

    async def default_secret(self, request: Request) -> Response:
        if not self.authorised(request):
            return self.problem(401, "You did not pass a valid authentication token", "Unauthenticated")
        return JSONResponse({"key": self.secret})

    async def file(self, request: Request) -> Response:
        image = self.images.get(request.path_params["prediction_id"])
        return Response(image, media_type="image/png") if image else Response(status_code=404)

    async def set_config(self, request: Request) -> Response:
        self.config = Config(**(await request.json()))
        return JSONResponse(vars(self.config))

    async def list_predictions(self, _: Request) -> Response:
        return JSONResponse({"predictions": list(self.predictions.values()), "deliveries": self.deliveries})

    async def health(self, _: Request) -> Response:
        return JSONResponse({"ok": True})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/models/{owner}/{name}/predictions", self.create, methods=["POST"]),
                Route("/v1/predictions/{prediction_id}", self.get),
                Route("/v1/predictions/{prediction_id}/cancel", self.cancel, methods=["POST"]),
                Route("/v1/webhooks/default/secret", self.default_secret),
                Route("/files/{prediction_id}.png", self.file),
                Route("/_fake/config", self.set_config, methods=["POST"]),
                Route("/_fake/predictions", self.list_predictions),
                Route("/_fake/health", self.health),
            ]
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", required=True)
    args = parser.parse_args()
    fake = FakeReplicate(api_token=args.api_key, base_url=f"http://127.0.0.1:{args.port}")
    uvicorn.run(fake.app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
