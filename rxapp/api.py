"""Plain Starlette routes mounted into the Reflex app: webhooks and stored media.

The webhook route answers the provider as soon as the job row is written; pushing
to browsers happens elsewhere (the change-feed bridge), so a slow tab never
delays a provider.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from core.errors import NotFound
from core.media.previews import MEDIA_TYPE, URL_PREFIX
from core.media.store import COPY_MEDIA_TYPE, original_name
from core.realtime.selftest import FAILED, RealtimeCheck
from core.root import Core
from models.tables import utcnow
from rxapp.auth import SESSION_COOKIE, auth_routes, request_viewer
from rxapp.realtime.confirmations import MAX_BODY_BYTES, BadReport, parse_reports

MAX_WEBHOOK_BYTES = 1024 * 1024


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to exceed `limit` (never buffering more)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _copy_or_file(core: Core, name: str) -> bytes | Path | None:
    """A copy's bytes (tens of KB, read here at once), or an original's file to stream.

    Every tab asks for a new result's copy in the same moment. A `FileResponse` stats, opens,
    reads and closes the file in four trips to a thread, each waiting for the busy event loop
    to come back: with 10 tabs the 17 KB copy's last byte came 77-91 ms (p50) after its request.
    Read whole here and sent at once: 52-80 ms.
    """
    path = core.media.file_for(name)
    if path is None or original_name(name) == name:
        return path
    return path.read_bytes()


def build_api(core: Core) -> Starlette:

    async def webhook(request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return JSONResponse({"error": "webhooks must be application/json"}, status_code=415)
        body = await _read_limited(request, MAX_WEBHOOK_BYTES)
        if body is None:
            return JSONResponse({"error": f"body larger than {MAX_WEBHOOK_BYTES} bytes"}, status_code=413)
        p = request.path_params
        outcome = await core.webhooks.receive(p["provider"], p["job_id"], p["token"], request.headers, body)
        return JSONResponse({"result": outcome.message}, status_code=outcome.status_code)

    async def media(request: Request) -> Response:
        """An image or one of its copies, for its owners or a provider holding a signed link; 404 for anyone else.

        A copy (`<name>.w256.webp`) is decided as its original: a stranger gets the same 404.
        Names are content hashes, so a response never changes: `immutable`, the name as ETag
        (304 on revalidation), `private` because who may see it is decided per user.
        """
        name = request.path_params["name"]
        original = original_name(name)
        if original is None:
            return Response("not found", status_code=404)
        if not core.links.verify(name, request.url.query):
            token = request.cookies.get(SESSION_COOKIE, "")
            if not core.media_passes.admits(token, original):
                viewer = await request_viewer(core, request)
                if viewer is None or not await asyncio.to_thread(core.access.may_see_media, viewer.id, original):
                    return Response("not found", status_code=404)
                core.media_passes.remember(token, original, viewer.id)
        headers = {"Cache-Control": "private, max-age=31536000, immutable", "ETag": f'"{name}"'}
        if headers["ETag"] in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        found = await asyncio.to_thread(_copy_or_file, core, name)  # may make a missing copy: CPU
        if found is None:
            return Response("not found", status_code=404)
        if isinstance(found, bytes):
            return Response(found, media_type=COPY_MEDIA_TYPE, headers=headers)
        return FileResponse(found, headers=headers)

    async def preview(request: Request) -> Response:
        """A running job's latest preview, for the members of its project; 404 for anyone else.

        The project's yes is remembered like an image's (`MediaPasses`, forgotten when the
        viewer's memberships change): every tab fetches each new preview, up to 4 a second.
        """
        project_id, job_id = request.path_params["project_id"], request.path_params["job_id"]
        token, grant = request.cookies.get(SESSION_COOKIE, ""), f"{URL_PREFIX}/{project_id}"
        if not core.media_passes.admits(token, grant):
            viewer = await request_viewer(core, request)
            try:
                if viewer is None:
                    raise NotFound("sign in first")
                await asyncio.to_thread(core.access.project, viewer.id, project_id)
            except NotFound:
                return Response("not found", status_code=404)
            core.media_passes.remember(token, grant, viewer.id)
        data = await asyncio.to_thread(core.progress.previews.read, project_id, job_id)
        if data is None:
            return Response("not found", status_code=404)
        # Each new preview has a new URL (its version): a cached one is never stale for long.
        return Response(data, media_type=MEDIA_TYPE, headers={"Cache-Control": "private, max-age=300"})

    allowed_origins = set(core.settings.allowed_origins)

    def foreign(request: Request) -> bool:
        """A page of another site (browsers send Origin on every POST); tools send none."""
        origin = request.headers.get("origin")
        return origin is not None and origin not in allowed_origins

    async def feed_seen(request: Request) -> Response:
        """A batch of tabs' delivery confirmations; answers which of them should resync."""
        if foreign(request):
            return JSONResponse({"error": "origin not allowed"}, status_code=403)
        body = await _read_limited(request, MAX_BODY_BYTES)
        if body is None:
            return JSONResponse({"error": f"body larger than {MAX_BODY_BYTES} bytes"}, status_code=413)
        try:
            reports = parse_reports(body, request.headers.get("user-agent", ""), utcnow())
        except BadReport as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        viewer = await request_viewer(core, request)
        if viewer is None:
            return JSONResponse({"error": "sign in first"}, status_code=401)
        try:
            for project_id in {r.project_id for r in reports}:
                await asyncio.to_thread(core.access.project, viewer.id, project_id)
        except NotFound as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        resync = await core.inbox.confirm(reports)
        return JSONResponse({"resync": sorted(resync)})

    async def check_realtime(request: Request) -> Response:
        """The realtime self-test on the viewer's first project, for `make doctor` (the page has a dialog)."""
        if foreign(request):
            return JSONResponse({"error": "origin not allowed"}, status_code=403)
        viewer = await request_viewer(core, request)
        if viewer is None:
            return JSONResponse({"error": "sign in first (AUTH_REQUIRED is on)"}, status_code=401)
        project = await asyncio.to_thread(core.canvas.ensure_default_project, viewer.id)
        hops = await RealtimeCheck(core).run(project.id)
        passed = all(hop.verdict != FAILED for hop in hops)
        return JSONResponse({"passed": passed, "project_id": project.id, "hops": [asdict(hop) for hop in hops]})

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
            Route(URL_PREFIX + "/{project_id:int}/{job_id}.jpg", preview),
            Route("/api/feed/seen", feed_seen, methods=["POST"]),
            Route("/api/check/realtime", check_realtime, methods=["POST"]),
            Route("/healthz", healthz),
            *auth_routes(core),
            Route("/readyz", readyz),
            *(route for provider in core.registry.providers.values() for route in provider.routes),
        ]
    )
