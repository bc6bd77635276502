"""This process's background work, owned by one object: started by the app's lifespan, stopped with it.

Each loop is a named coroutine function. `start` runs them as tasks on the running loop (and
makes the pipeline submit there), `stop` cancels them and waits, `health` says of each whether
it still runs. The core's own loops are here; the web layer adds its own (the room bridge,
presence, the worker heartbeat) by name, so one object holds them all, as procrastinate's
`Worker` does. Tests build their own `Worker` around their own `Core`, or none.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from sqlalchemy.exc import OperationalError

from core.logs import get_logger
from core.root import Core

log = get_logger("worker")
Loop = Callable[[], Coroutine[Any, Any, None]]

POLL_TICK_S = 0.5
#: Every 5 s, queued jobs whose submitting worker died (their lease ran out) are submitted again,
#: and the run plans' waiting steps that can start, start.
ORPHAN_SWEEP_TICKS = 10
#: The delivery ledger settles overdue confirmations this often, and forgets old rows every 10 minutes.
DELIVERY_TICK_S = 1.0
DELIVERY_FORGET_TICKS = 600


class Worker:
    def __init__(self, core: Core, extra: Mapping[str, Loop] | None = None) -> None:
        self.core = core
        self.loops: dict[str, Loop] = {"jobs": self._jobs, "delivery": self._delivery}
        if core.listener is not None:
            # PostgreSQL: hear the changes other worker processes (and psql) commit.
            self.loops["listener"] = core.listener.run
        self.loops.update(extra or {})
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def start(self) -> None:
        self.core.pipeline.serve(asyncio.get_running_loop())
        for name, loop in self.loops.items():
            self._tasks[name] = asyncio.create_task(loop(), name=f"worker.{name}")

    async def stop(self) -> None:
        """Cancel the loops and wait for them; forget this process's retry timers and finish its
        submissions (another worker, or the next start, takes the rest from the database)."""
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()
        pipeline = self.core.pipeline
        pipeline.forget_retries()
        await pipeline.drain()
        # A poll cancelled mid-flight kept its claim; given back, the next start (or another
        # worker) polls that job at once instead of after the lease (WORK_LEASE_S) runs out.
        try:
            released = await self.core.async_jobs.release_all(pipeline.worker_id)
        except OperationalError:
            log.warning("claims not released: the database is gone", extra={"step": "worker.stopped"})
        else:
            log.info("worker stopped", extra={"step": "worker.stopped", "released": released})

    def health(self) -> dict[str, str]:
        """Each loop: "ok" while it runs, else how it ended."""
        verdicts = {}
        for name, task in self._tasks.items():
            if not task.done():
                verdicts[name] = "ok"
            elif task.cancelled():
                verdicts[name] = "cancelled"
            else:
                verdicts[name] = f"stopped: {task.exception()!r}"
        return verdicts

    async def run(self) -> None:
        """Start, then run until cancelled (the app's lifespan ends), then stop."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    # the core's loops ---------------------------------------------------------
    async def _jobs(self) -> None:
        """Ask providers about jobs whose webhook has not come (yet); submit jobs whose worker died."""
        core = self.core
        for tick in itertools.count():
            try:
                if tick % ORPHAN_SWEEP_TICKS == 0:
                    await core.pipeline.resume_unfinished()
                    await asyncio.to_thread(core.plan.resume)
                await core.poller.poll_due()
            except Exception:
                log.exception("poll round failed", extra={"step": "poll.crashed"})
            await asyncio.sleep(POLL_TICK_S)

    async def _delivery(self) -> None:
        """Name the tabs that did not show a change in time, even when no tab reports anything."""
        delivery = self.core.delivery
        for tick in itertools.count(1):
            await asyncio.sleep(DELIVERY_TICK_S)
            try:
                await asyncio.to_thread(delivery.sweep)
                if tick % DELIVERY_FORGET_TICKS == 0:
                    await asyncio.to_thread(delivery.forget)
            except Exception:
                log.exception("delivery sweep failed", extra={"step": "delivery.crashed"})
