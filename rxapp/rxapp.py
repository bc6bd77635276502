"""The Reflex app: pages, the API routes, the fallback poller and the room bridge."""

from __future__ import annotations

import asyncio
import itertools

import reflex as rx
from reflex.event import Event

from core.logs import get_logger
from core.plan import submit_planned
from rxapp.api import build_api
from rxapp.components.room_store import RoomStore
from rxapp.ghosts import WorkerHeartbeat
from rxapp.pages.canvas import canvas_page, redirect_page
from rxapp.runtime import bridge, core
from rxapp.states.room import ProjectRoom

log = get_logger("bridge")
POLL_TICK_S = 0.5
#: The delivery ledger settles overdue confirmations this often, and forgets old rows every 10 minutes.
DELIVERY_TICK_S = 1.0
DELIVERY_FORGET_TICKS = 600
#: Every 5 s, queued jobs whose submitting worker died (their lease ran out) are submitted again.
ORPHAN_SWEEP_TICKS = 10

app = rx.App(
    api_transformer=build_api(core),
    extra_app_wraps={(1, "RoomStore"): lambda _: RoomStore.create()},
)
app.add_page(redirect_page, route="/", title="Canvas", on_load=ProjectRoom.open_project)
app.add_page(canvas_page, route="/p/[project_id]", title="Canvas", on_load=ProjectRoom.open_project)

bridge.attach(app)


@app.register_lifespan_task
async def fallback_poller() -> None:
    """Ask providers about jobs whose webhook has not come (yet); submit jobs whose worker died."""
    for tick in itertools.count():
        try:
            if tick % ORPHAN_SWEEP_TICKS == 0:
                await core.pipeline.resume_unfinished()
                await asyncio.to_thread(core.plan.resume)
            await core.poller.poll_due()
        except Exception:
            log.exception("poll round failed", extra={"step": "poll.crashed"})
        await asyncio.sleep(POLL_TICK_S)


@app.register_lifespan_task
async def delivery_sweeper() -> None:
    """Name the tabs that did not show a change in time, even when no tab reports anything."""
    for tick in itertools.count(1):
        await asyncio.sleep(DELIVERY_TICK_S)
        try:
            await asyncio.to_thread(core.delivery.sweep)
            if tick % DELIVERY_FORGET_TICKS == 0:
                await asyncio.to_thread(core.delivery.forget)
        except Exception:
            log.exception("delivery sweep failed", extra={"step": "delivery.crashed"})


@app.register_lifespan_task
async def planned_jobs() -> None:
    """Submit the jobs run plans queue (Run all stale, a node whose inputs just completed)."""
    await submit_planned(core.plan, core.pipeline)


@app.register_lifespan_task
async def change_listener() -> None:
    """On PostgreSQL: hear the changes other worker processes (and psql) commit."""
    if core.listener is not None:
        await core.listener.run()


@app.register_lifespan_task
async def room_bridge() -> None:
    """Turn committed changes into one message per project room (rxapp/bridge.py)."""
    await bridge.run()


@app.register_lifespan_task
async def presence_rounds() -> None:
    """Renew this process's tabs' presence and send each room who is there when it changed."""
    await bridge.run_presence()


@app.register_lifespan_task
async def worker_heartbeat() -> None:
    """With Redis: this worker's heartbeat, and the socket records of dead workers swept (rxapp/ghosts.py)."""
    if core.settings.redis_url:
        # Read on the class, the handler is an EventHandler (the decorator types it as the method).
        (reopen,) = Event.from_event_type(ProjectRoom.open_project)  # type: ignore[arg-type]
        await WorkerHeartbeat(app, core.settings.redis_url, reopen).run()
