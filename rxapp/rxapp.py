"""The Reflex app: pages, the API routes, and this process's background work (one `core.worker.Worker`)."""

from __future__ import annotations

import reflex as rx
from reflex.event import Event

from core.worker import Worker
from rxapp.api import build_api
from rxapp.pages.canvas import canvas_page, redirect_page
from rxapp.realtime.connection import ConnectionWatch
from rxapp.realtime.ghosts import WorkerHeartbeat
from rxapp.realtime.room_store import RoomStore
from rxapp.runtime import bridge, core, settle_collector
from rxapp.states.room import ProjectRoom

app = rx.App(
    api_transformer=build_api(core),
    extra_app_wraps={
        (1, "RoomStore"): lambda _: RoomStore.create(),
        (2, "ConnectionWatch"): lambda _: ConnectionWatch.create(),
    },
)
app.add_page(redirect_page, route="/", title="Canvas", on_load=ProjectRoom.open_project)
app.add_page(canvas_page, route="/p/[project_id]", title="Canvas", on_load=ProjectRoom.open_project)

bridge.attach(app)


@app.register_lifespan_task
async def background_work() -> None:
    """This process's loops, in one `Worker`: the core's (polls, sweeps, LISTEN) and the web layer's."""
    loops = {
        # Committed changes -> one message per project room (rxapp/realtime/bridge.py).
        "room_bridge": bridge.run,
        # This process's tabs' presence renewed; each room told who is there when it changed.
        "presence": bridge.run_presence,
    }
    if core.settings.redis_url:
        # This worker's heartbeat, and the socket records of dead workers swept (rxapp/realtime/ghosts.py).
        # Read on the class, the handler is an EventHandler (the decorator types it as the method).
        (reopen,) = Event.from_event_type(ProjectRoom.open_project)  # type: ignore[arg-type]
        loops["heartbeat"] = WorkerHeartbeat(app, core.settings.redis_url, reopen).run
    settle_collector()
    await Worker(core, loops).run()
