"""A fake ComfyUI: a real HTTP and websocket server on loopback, written from ComfyUI's server.py.

Run: `python -m e2e.fakes.comfyui_server --port N --api-key unused`. What it serves, as ComfyUI does:
`GET /object_info[/{class}]` (the checkpoint loader's `ckpt_name` choices), `POST /prompt`
(`{prompt_id, number, node_errors}`, or 400 with `error` and `node_errors` for a workflow it
refuses: an unknown node class, a checkpoint not in the list, a missing link), `GET /queue`
(`queue_running` / `queue_pending` as `[number, prompt_id, prompt, extra_data, outputs]`),
`POST /queue` (`{"delete": [ids]}`), `POST /interrupt` (the running prompt; with `prompt_id`,
only that one), `POST /upload/image` (multipart `image` -> `{name, subfolder, type}`),
`GET /history/{prompt_id}` (`{id: {prompt, outputs, status}}`), `GET /view`, and the websocket
`/ws?clientId=` with `status`, `execution_start`, `execution_cached`, `executing`, `progress`,
`executed`, `execution_success` / `execution_error` / `execution_interrupted`, and binary preview
frames: a 4-byte big-endian event type (1, a preview image), a 4-byte format (1 JPEG, 2 PNG),
then the image. Messages of a prompt go to the socket of the client that queued it.
Tests steer it through `POST /_fake/config` (steps, seconds per step, a failing sampler).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import struct
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from PIL import Image, ImageFilter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from e2e.fakes.render import render_result

CHECKPOINTS = ["sd_xl_base_1.0.safetensors", "flux/dev-fp8.safetensors"]
#: The node classes its workflows may use, and their outputs' types (for link checks).
NODES = {
    "CheckpointLoaderSimple": ("MODEL", "CLIP", "VAE"),
    "CLIPTextEncode": ("CONDITIONING",),
    "EmptyLatentImage": ("LATENT",),
    "KSampler": ("LATENT",),
    "VAEDecode": ("IMAGE",),
    "VAEEncode": ("LATENT",),
    "LoadImage": ("IMAGE", "MASK"),
    "SaveImage": (),
}
PREVIEW_IMAGE = 1
JPEG = 1


@dataclass
class Config:
    steps: int = 8
    step_s: float = 0.15
    fail_sampler: bool = False


@dataclass
class Prompt:
    prompt_id: str
    number: int
    graph: dict[str, Any]
    client_id: str
    interrupted: bool = False


@dataclass
class FakeComfyUI:
    base_url: str
    config: Config = field(default_factory=Config)
    pending: list[Prompt] = field(default_factory=list)
    running: Prompt | None = None
    history: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (type, name) -> bytes
    sockets: dict[str, WebSocket] = field(default_factory=dict)
    number: int = 0
    interrupts: list[str] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    worker: asyncio.Task[None] | None = None

    # websocket --------------------------------------------------------------
    async def ws(self, socket: WebSocket) -> None:
        await socket.accept()
        sid = socket.query_params.get("clientId") or uuid.uuid4().hex
        self.sockets[sid] = socket
        try:
            await self.send("status", {"status": self.queue_info(), "sid": sid}, sid)
            while True:
                await socket.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            if self.sockets.get(sid) is socket:
                del self.sockets[sid]

    async def send(self, event: str, data: dict[str, Any], sid: str | None = None) -> None:
        targets = [self.sockets[sid]] if sid is not None and sid in self.sockets else []
        if sid is None:
            targets = list(self.sockets.values())
        for socket in targets:
            # A socket gone meanwhile is skipped, as ComfyUI's send_socket_catch_exception does.
            with contextlib.suppress(Exception):
                await socket.send_json({"type": event, "data": data})

    async def send_preview(self, image: bytes, sid: str) -> None:
        socket = self.sockets.get(sid)
        if socket is not None:
            with contextlib.suppress(Exception):
                await socket.send_bytes(struct.pack(">I", PREVIEW_IMAGE) + struct.pack(">I", JPEG) + image)

    def queue_info(self) -> dict[str, Any]:
        return {"exec_info": {"queue_remaining": len(self.pending) + (1 if self.running else 0)}}

    # the queue ----------------------------------------------------------------
    def validate(self, graph: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """(error, node_errors), both empty when ComfyUI would queue it."""
        if not isinstance(graph, dict) or not graph:
            return {"type": "no_prompt", "message": "No prompt provided", "details": "", "extra_info": {}}, {}
        node_errors: dict[str, Any] = {}
        for node_id, node in graph.items():
            class_type = node.get("class_type") if isinstance(node, dict) else None
            if class_type not in NODES:
                error = {
                    "type": "invalid_prompt",
                    "message": f"Cannot execute because node {class_type} does not exist.",
                    "details": f"Node ID '#{node_id}'",
                    "extra_info": {},
                }
                return error, {}
            errors = []
            for name, value in node.get("inputs", {}).items():
                if isinstance(value, list) and (len(value) != 2 or str(value[0]) not in graph):
                    errors.append({"type": "bad_linked_input", "message": "Bad linked input", "details": name})
            if class_type == "CheckpointLoaderSimple" and node["inputs"].get("ckpt_name") not in CHECKPOINTS:
                value = node["inputs"].get("ckpt_name")
                errors.append(
                    {
                        "type": "value_not_in_list",
                        "message": "Value not in list",
                        "details": f"ckpt_name: '{value}' not in {CHECKPOINTS}",
                        "extra_info": {"input_name": "ckpt_name", "received_value": value},
                    }
                )
            if class_type == "LoadImage" and ("input", node["inputs"].get("image")) not in self.files:
                errors.append({"type": "custom_validation_failed", "message": "Invalid image file", "details": ""})
            if errors:
                node_errors[node_id] = {"errors": errors, "dependent_outputs": [], "class_type": class_type}
        if node_errors:
            error = {
                "type": "prompt_outputs_failed_validation",
                "message": "Prompt outputs failed validation",
                "details": "",
                "extra_info": {},
            }
            return error, node_errors
        return {}, {}

    async def post_prompt(self, request: Request) -> Response:
        body = await request.json()
        error, node_errors = self.validate(body.get("prompt"))
        if error:
            return JSONResponse({"error": error, "node_errors": node_errors}, status_code=400)
        prompt = Prompt(str(uuid.uuid4()), self.number, body["prompt"], str(body.get("client_id", "")))
        self.number += 1
        self.pending.append(prompt)
        self.wake.set()
        await self.send("status", {"status": self.queue_info()})
        if self.worker is None:
            self.worker = asyncio.create_task(self.work())
        return JSONResponse({"prompt_id": prompt.prompt_id, "number": prompt.number, "node_errors": {}})

    def _entry(self, prompt: Prompt) -> list[Any]:
        return [prompt.number, prompt.prompt_id, prompt.graph, {"client_id": prompt.client_id}, ["9"]]

    async def get_queue(self, _: Request) -> Response:
        running = [self._entry(self.running)] if self.running else []
        return JSONResponse({"queue_running": running, "queue_pending": [self._entry(p) for p in self.pending]})

    async def post_queue(self, request: Request) -> Response:
        body = await request.json()
        if body.get("clear"):
            self.pending.clear()
        for prompt_id in body.get("delete", []):
            self.pending = [p for p in self.pending if p.prompt_id != prompt_id]
        await self.send("status", {"status": self.queue_info()})
        return Response(status_code=200)

    async def interrupt(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = {}
        wanted = body.get("prompt_id") if isinstance(body, dict) else None
        if self.running is not None and wanted in (None, self.running.prompt_id):
            self.running.interrupted = True
            self.interrupts.append(self.running.prompt_id)
        return Response(status_code=200)

    async def work(self) -> None:
        while True:
            while not self.pending:
                self.wake.clear()
                await self.wake.wait()
            prompt = self.running = self.pending.pop(0)
            try:
                await self.execute(prompt)
            finally:
                self.running = None
                await self.send("status", {"status": self.queue_info()})

    async def execute(self, prompt: Prompt) -> None:
        sid, prompt_id = prompt.client_id, prompt.prompt_id
        graph = prompt.graph
        status: dict[str, Any] = {"status_str": "success", "completed": True, "messages": []}
        stamp = int(time.time() * 1000)
        await self.send("execution_start", {"prompt_id": prompt_id, "timestamp": stamp}, sid)
        status["messages"].append(["execution_start", {"prompt_id": prompt_id, "timestamp": stamp}])
        await self.send("execution_cached", {"nodes": [], "prompt_id": prompt_id, "timestamp": stamp}, sid)
        sampler = next(n for n, node in graph.items() if node["class_type"] == "KSampler")
        save = next(n for n, node in graph.items() if node["class_type"] == "SaveImage")
        text = next(node["inputs"]["text"] for node in graph.values() if node["class_type"] == "CLIPTextEncode")
        latent = next((node for node in graph.values() if node["class_type"] == "EmptyLatentImage"), None)
        loaded = next((node for node in graph.values() if node["class_type"] == "LoadImage"), None)
        ratio = f"{latent['inputs']['width']}:{latent['inputs']['height']}" if latent else "1:1"
        inputs = [f"{self.base_url}/view?type=input&filename={loaded['inputs']['image']}"] if loaded else []
        result = await render_result(text, ratio, inputs)
        for node_id in graph:
            await self.send("executing", {"node": node_id, "display_node": node_id, "prompt_id": prompt_id}, sid)
            if node_id != sampler:
                continue
            steps = self.config.steps
            for step in range(1, steps + 1):
                await asyncio.sleep(self.config.step_s)
                if prompt.interrupted:
                    data = {"prompt_id": prompt_id, "node_id": node_id, "node_type": "KSampler", "executed": []}
                    await self.send("execution_interrupted", data, sid)
                    status.update(status_str="error", messages=[*status["messages"], ["execution_interrupted", data]])
                    self.history[prompt_id] = {"prompt": self._entry(prompt), "outputs": {}, "status": status}
                    return
                if self.config.fail_sampler and step == steps // 2:
                    data = {
                        "prompt_id": prompt_id,
                        "node_id": node_id,
                        "node_type": "KSampler",
                        "executed": [],
                        "exception_message": "Allocation on device 0 would exceed allowed memory. (out of memory)",
                        "exception_type": "torch.OutOfMemoryError",
                        "traceback": [],
                        "current_inputs": {},
                        "current_outputs": {},
                    }
                    await self.send("execution_error", data, sid)
                    status.update(status_str="error", messages=[*status["messages"], ["execution_error", data]])
                    self.history[prompt_id] = {"prompt": self._entry(prompt), "outputs": {}, "status": status}
                    return
                data = {"value": step, "max": steps, "prompt_id": prompt_id, "node": node_id}
                await self.send("progress", data, sid)
                await self.send_preview(_preview(result, step / steps), sid)
        name = f"ComfyUI_{self.number:05d}_.png"
        self.files[("output", name)] = result
        output = {"images": [{"filename": name, "subfolder": "", "type": "output"}]}
        await self.send("executed", {"node": save, "display_node": save, "output": output, "prompt_id": prompt_id}, sid)
        stamp = int(time.time() * 1000)
        await self.send("execution_success", {"prompt_id": prompt_id, "timestamp": stamp}, sid)
        await self.send("executing", {"node": None, "prompt_id": prompt_id}, sid)
        status["messages"].append(["execution_success", {"prompt_id": prompt_id, "timestamp": stamp}])
        self.history[prompt_id] = {"prompt": self._entry(prompt), "outputs": {save: output}, "status": status}

    # files and models -----------------------------------------------------------
    async def upload(self, request: Request) -> Response:
        form = await request.form()
        image = form.get("image")
        if image is None or isinstance(image, str) or not image.filename:
            return Response(status_code=400)
        kind = str(form.get("type") or "input")
        self.files[(kind, image.filename)] = await image.read()
        return JSONResponse({"name": image.filename, "subfolder": str(form.get("subfolder", "")), "type": kind})

    async def view(self, request: Request) -> Response:
        query = request.query_params
        name = query.get("filename", "")
        if not name or name.startswith("/") or ".." in name:
            return Response(status_code=400)
        data = self.files.get((query.get("type", "output"), name))
        return Response(data, media_type="image/png") if data else Response(status_code=404)

    async def get_history(self, request: Request) -> Response:
        prompt_id = request.path_params["prompt_id"]
        return JSONResponse({prompt_id: self.history[prompt_id]} if prompt_id in self.history else {})

    def checkpoint_info(self) -> dict[str, Any]:
        return {
            "CheckpointLoaderSimple": {
                "input": {"required": {"ckpt_name": [CHECKPOINTS, {"tooltip": "The name of the checkpoint"}]}},
                "input_order": {"required": ["ckpt_name"]},
                "output": ["MODEL", "CLIP", "VAE"],
                "name": "CheckpointLoaderSimple",
                "display_name": "Load Checkpoint",
                "category": "loaders",
                "output_node": False,
            }
        }

    async def object_info(self, request: Request) -> Response:
        wanted = request.path_params.get("node_class")
        info = self.checkpoint_info()
        if wanted is not None:
            return JSONResponse(info if wanted in info else {})
        return JSONResponse(info)

    async def set_config(self, request: Request) -> Response:
        self.config = Config(**(await request.json()))
        return JSONResponse(vars(self.config))

    async def state(self, _: Request) -> Response:
        return JSONResponse({"interrupts": self.interrupts, "history": list(self.history)})

    async def health(self, _: Request) -> Response:
        return JSONResponse({"ok": True})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                WebSocketRoute("/ws", self.ws),
                Route("/object_info", self.object_info),
                Route("/object_info/{node_class}", self.object_info),
                Route("/prompt", self.post_prompt, methods=["POST"]),
                Route("/queue", self.get_queue),
                Route("/queue", self.post_queue, methods=["POST"]),
                Route("/interrupt", self.interrupt, methods=["POST"]),
                Route("/upload/image", self.upload, methods=["POST"]),
                Route("/history/{prompt_id}", self.get_history),
                Route("/view", self.view),
                Route("/_fake/config", self.set_config, methods=["POST"]),
                Route("/_fake/state", self.state),
                Route("/_fake/health", self.health),
            ]
        )


def _preview(png: bytes, done: float) -> bytes:
    """A sampler's look `done` of the way: the result, blurred and small, as JPEG (ComfyUI's latent previews)."""
    with Image.open(io.BytesIO(png)) as result:
        image = result.convert("RGB")
    image.thumbnail((256, 256))
    out = io.BytesIO()
    image.filter(ImageFilter.GaussianBlur(radius=8 * (1 - done))).save(out, format="JPEG", quality=60)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", default="")  # FakeProviderServer passes one; ComfyUI has no key
    args = parser.parse_args()
    fake = FakeComfyUI(base_url=f"http://127.0.0.1:{args.port}")
    uvicorn.run(fake.app(), host="127.0.0.1", port=args.port, log_level="warning", ws="wsproto")


if __name__ == "__main__":
    main()
