"""No ghosts in Redis: socket records of workers that are gone, and tabs whose state Redis lost.

Reflex (0.10, `RedisTokenManager`) keeps one record per connected tab in Redis, naming
the worker (its instance id) that holds the tab's socket, for an hour. A worker killed
outright never deletes its records, so for that hour every update meant for one of its
tabs is published to a channel nobody reads, and the tab, reconnecting elsewhere with
its token, is taken for a duplicate and handed a new, empty state.

Each worker therefore says it is alive: a heartbeat key with a short expiry, refreshed
every second (`WorkerHeartbeat.run`). A record is deleted only when its worker is proven
gone: not this worker, and its heartbeat absent at two sweeps in a row (a worker that
just started, or whose loop was busy for a moment, is never taken for dead), and the
record still the one read (compare-and-delete in Redis, so a tab that re-linked
meanwhile keeps its new record). Reflex's own answer to a deleted record of a live
socket is to store it again, so even a wrong guess heals itself.

When this worker finds its own heartbeat key gone, Redis may have lost its data
(restarted or flushed), and with it every tab's Reflex state: each tab connected here is
told to run its page's on_load again (`ProjectRoom.open_project`), which re-reads who it
is and which project it shows from the database and sends it a fresh snapshot. (If the
key ran out because this worker itself stood still, that costs its tabs one snapshot.)
Socket records are not written back: after a stall, a tab may already be linked on
another worker under the same token, and Reflex's own record wins.
"""

from __future__ import annotations

import asyncio
import os
import pickle
from typing import TYPE_CHECKING

import redis.asyncio
from reflex.event import Event
from reflex.state import StateUpdate
from reflex.utils.token_manager import RedisTokenManager

from core.logs import get_logger, log_step

if TYPE_CHECKING:
    import reflex as rx

log = get_logger("ghosts")

HEARTBEAT_PREFIX = "canvas_worker_alive_"
#: A worker refreshes its heartbeat every BEAT_S; one silent for HEARTBEAT_TTL_S is gone.
BEAT_S = 1.0
HEARTBEAT_TTL_S = 4
SCAN_BATCH = 500
# Delete a key only if it still holds the value read: a record rewritten since stays.
COMPARE_AND_DELETE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def heartbeat_key(instance_id: str) -> str:
    return f"{HEARTBEAT_PREFIX}{instance_id}"


class WorkerHeartbeat:
    def __init__(self, app: rx.App, redis_url: str, reopen: Event) -> None:
        self._app = app
        self._redis = redis.asyncio.Redis.from_url(redis_url)
        self._reopen = reopen
        #: Instance ids whose heartbeat was missing at the last sweep.
        self._suspects: set[str] = set()

    @property
    def _tokens(self) -> RedisTokenManager | None:
        namespace = self._app.event_namespace
        manager = namespace._token_manager if namespace is not None else None  # Reflex keeps it private
        return manager if isinstance(manager, RedisTokenManager) else None

    async def run(self) -> None:
        beating: str | None = None  # the instance id whose heartbeat this worker keeps
        down = False  # said once per Redis outage, not every second
        while True:
            tokens = self._tokens
            try:
                if tokens is not None:
                    # Read each time: Reflex gives the worker its instance id when the app starts serving.
                    me = tokens.instance_id
                    if not await self._beat(me) and beating == me:
                        await self._recover(tokens, me)
                    beating = me
                    await self.sweep(me)
                down = False
            except (redis.RedisError, OSError) as exc:
                if not down:
                    log.warning("presence round failed: %s", exc, extra={"step": "ghosts.redis_down"})
                down = True
            await asyncio.sleep(BEAT_S)

    async def _beat(self, me: str) -> bool:
        """Refresh this worker's heartbeat; False when the key had to be created."""
        value = str(os.getpid())
        if await self._redis.set(heartbeat_key(me), value, ex=HEARTBEAT_TTL_S, xx=True):
            return True
        await self._redis.set(heartbeat_key(me), value, ex=HEARTBEAT_TTL_S)
        return False

    async def sweep(self, me: str) -> int:
        """Delete the socket records of workers proven gone; how many were deleted."""
        records: dict[bytes, bytes] = {}
        async for keys in self._batches(f"{RedisTokenManager._token_socket_record_prefix}*"):
            values = await self._redis.mget(keys)
            records.update((key, value) for key, value in zip(keys, values, strict=True) if value)
        owners: dict[bytes, str] = {}
        for key, value in records.items():
            try:
                owners[key] = pickle.loads(value).instance_id
            except Exception:  # not a record this version of Reflex wrote: not ours to judge
                continue
        others = {owner for owner in owners.values() if owner != me}
        absent = {owner for owner in others if not await self._redis.exists(heartbeat_key(owner))}
        gone, self._suspects = absent & self._suspects, absent
        deleted = 0
        for key, owner in owners.items():
            if owner in gone:
                deleted += int(await self._redis.eval(COMPARE_AND_DELETE, 1, key, records[key]))  # type: ignore[misc]
        if deleted:
            log_step(log, "ghosts.swept", records=deleted, workers=len(gone))
        return deleted

    async def _batches(self, pattern: str):
        cursor = 0
        while True:
            cursor, keys = await self._redis.scan(cursor=cursor, match=pattern, count=SCAN_BATCH)
            if keys:
                yield keys
            if not cursor:
                return

    async def _recover(self, tokens: RedisTokenManager, me: str) -> None:
        """Redis lost the tabs' states: have each tab connected here reopen its page."""
        namespace = self._app.event_namespace
        assert namespace is not None
        mine = [token for token, record in list(tokens.token_to_socket.items()) if record.instance_id == me]
        for token in mine:
            await namespace.emit_update(StateUpdate(events=[self._reopen]), token)
        log_step(log, "ghosts.redis_lost", tabs=len(mine))
