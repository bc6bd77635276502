"""Plain Starlette routes mounted into the Reflex app: webhooks and stored media.

The webhook route answers the provider as soon as the job row is written; pushing
to browsers happens elsewhere (the change-feed bridge), so a slow tab never
delays a provider.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from models.core import Core

MAX_WEBHOOK_BYTES = 1024 * 1024


def build_api(core: Core) -> Starlette:

    async def webhook(request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return JSONResponse({"error": "webhooks must be application/json"}, status_code=415)
        body = await request.body()
        if len(body) > MAX_WEBHOOK_BYTES:
            return JSONResponse({"error": "body too large"}, status_code=413)
        p = request.path_params
        outcome = await core.pipeline.on_webhook(p["provider"], p["job_id"], p["token"], request.headers, body)
        return JSONResponse({"result": outcome.message}, status_code=outcome.status_code)

    async def media(request: Request) -> Response:
        path = core.media.file_for(request.path_params["name"])
        if path is None:
            return Response("not found", status_code=404)
        return FileResponse(path, headers={"Cache-Control": "public, max-age=31536000, immutable"})

    async def healthz(_: Request) -> Response:
        """The process is up (liveness)."""
        return JSONResponse({"ok": True})

    async def readyz(_: Request) -> Response:
        """Database reachable, change feed listening, configuration usable (readiness)."""
        checks = await core.readiness()
        ready = all(verdict == "ok" for verdict in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    return Starlette(
        routes=[
            Route("/api/webhooks/{provider}/{job_id}/{token}", webhook, methods=["POST"]),
            Route("/media/{name}", media),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            *(route for provider in core.registry.providers.values() for route in provider.routes),
        ]
    )
