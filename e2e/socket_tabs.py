"""Tabs without a browser: each one a real Reflex session speaking the page's socket protocol.

A `SocketTab` connects to `/_event` as the compiled frontend does (a fresh tab token in
the query, the `hydrate_and_load` boot event in the CONNECT packet, the page's route
in its router data), sends back the backend events the server queues for it (on_load),
and records what reaches it: room snapshots and changes with their arrival time and
frame size, and Reflex's own `event` updates. Used by the benchmark's socket tier and
by the tests of the room broadcast.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import socketio

from rxapp.realtime.bridge import FILLED_DEFAULTS

EVENT_NAMESPACE = "/_event"
T = TypeVar("T")
BACKEND_EVENT_PREFIX = "reflex___state____state."
BOOT_EVENT = f"{BACKEND_EVENT_PREFIX}hydrate_and_load"


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run socket tabs from a test whose thread already runs Playwright's event loop."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


def handler_name(module: str, state: str, handler: str) -> str:
    """Reflex's full name of an event handler of a substate of `rx.State` (pinned in tests)."""
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", state).lower()
    return f"{BACKEND_EVENT_PREFIX}{module.replace('.', '___')}____{snake}.{handler}"


@dataclass
class Received:
    event: str
    message: Any
    at: float  # time.time() when it arrived
    size: int  # characters of the socket.io frame that carried it


@dataclass
class SocketTab:
    base_url: str
    project_id: int
    cookie: str = ""
    #: Reconnect when the socket drops, as the page does (a worker crashed or was taken out).
    reconnect: bool = False
    received: list[Received] = field(default_factory=list)
    _client: socketio.AsyncClient | None = None
    _frames: list[int] = field(default_factory=list)
    _snapshot: asyncio.Event = field(default_factory=asyncio.Event)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def path(self) -> str:
        return f"/p/{self.project_id}"

    def _router_data(self) -> dict[str, Any]:
        return {"pathname": self.path, "asPath": self.path, "query": {"project_id": str(self.project_id)}}

    async def open(self, timeout_s: float = 30.0) -> None:
        """Connect as a new tab of the project; return once its on_load finished (snapshot and state)."""
        client = self._client = socketio.AsyncClient(
            reconnection=self.reconnect, reconnection_delay=0.5, reconnection_delay_max=2
        )
        self._count_frames(client)
        for name in ("canvas.snapshot", "canvas.change", "canvas.progress"):
            client.on(name, self._recorder(name), namespace=EVENT_NAMESPACE)
        client.on("event", self._on_update, namespace=EVENT_NAMESPACE)
        headers = {"Origin": self.base_url}
        if self.cookie:
            headers["Cookie"] = self.cookie
        boot = {"name": BOOT_EVENT, "payload": {}, "router_data": self._router_data()}
        await client.connect(
            f"{self.base_url}?token={uuid.uuid4()}",
            socketio_path="_event",
            namespaces=[EVENT_NAMESPACE],
            transports=["websocket"],
            headers=headers,
            auth={"event": boot},
            wait_timeout=timeout_s,
        )
        await asyncio.wait_for(self._snapshot.wait(), timeout_s)
        await self.wait_for(self._hydrated, timeout_s)

    @staticmethod
    def _hydrated(item: Received) -> bool:
        """Reflex's last word on a page load: `is_hydrated` set once the on_load handlers ran."""
        deltas = (item.message.get("delta") or {}) if item.event == "event" else {}
        return deltas.get(BACKEND_EVENT_PREFIX[:-1], {}).get("is_hydrated_rx_state_") is True

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    async def close(self) -> None:
        if self._client is not None:
            await self._client.disconnect()

    async def send(self, handler: str, **payload: Any) -> None:
        """Send one backend event, as a click would (`handler` is Reflex's full handler name)."""
        assert self._client is not None
        event = {"name": handler, "payload": payload, "router_data": self._router_data()}
        await self._client.emit("event", event, namespace=EVENT_NAMESPACE)

    def screen(self) -> tuple[list[tuple[str, str]], dict[int, str]]:
        """What the tab shows after applying what it received: queue (id, status) and node images."""
        jobs: dict[str, dict] = {}
        nodes: dict[int, dict] = {}
        for item in self.received:
            if item.event == "canvas.snapshot":
                jobs = {j["id"]: j for j in item.message["jobs"]}
                nodes = {n["id"]: n for n in item.message["nodes"]}
            elif item.event == "canvas.change":
                for kind, held in (("jobs", jobs), ("nodes", nodes)):
                    for row in item.message.get(kind, []):
                        row = {**FILLED_DEFAULTS[kind], **row}  # as the page does (room_store.js)
                        if row["id"] not in held or row["version"] >= held[row["id"]]["version"]:
                            held[row["id"]] = row
        queue = sorted(jobs.values(), key=lambda j: (j["created_at"], j["id"]), reverse=True)
        return [(j["id"], j["status"]) for j in queue], {i: n["image_url"] for i, n in nodes.items()}

    def of(self, event: str) -> list[Received]:
        return [r for r in self.received if r.event == event]

    async def wait_for(self, predicate, timeout_s: float = 30.0) -> Received:
        """The first received message (old or new) for which `predicate(received)` holds."""

        async def first() -> Received:
            async with self._arrived:
                while True:
                    for item in self.received:
                        if predicate(item):
                            return item
                    await self._arrived.wait()

        return await asyncio.wait_for(first(), timeout_s)

    async def wait_until(self, holds: Callable[[SocketTab], bool], timeout_s: float = 30.0) -> None:
        """Until `holds(self)` is true of what the tab received, checked once per arrival.

        For a check of the whole screen: `wait_for` asks its predicate of every message each
        time one arrives, and a screen check there costs the square of the messages; with 20
        tabs in one event loop that starved the sockets of CPU.
        """

        async def settled() -> None:
            async with self._arrived:
                while not holds(self):
                    await self._arrived.wait()

        await asyncio.wait_for(settled(), timeout_s)

    # receiving ----------------------------------------------------------------
    def _count_frames(self, client: socketio.AsyncClient) -> None:
        """Remember each Engine.IO message's size as received, for the handler it reaches."""
        receive = client.eio._receive_packet

        async def counted(pkt):
            if isinstance(pkt.data, str):
                self._frames.append(len(pkt.data) + 1)  # +1: the Engine.IO type character
            return await receive(pkt)

        client.eio._receive_packet = counted

    def _recorder(self, name: str):
        async def record(message: Any) -> None:
            size = self._frames[-1] if self._frames else len(json.dumps(message))
            await self._record(Received(name, message, time.time(), size))
            if name == "canvas.snapshot":
                self._snapshot.set()

        return record

    async def _on_update(self, update: dict[str, Any]) -> None:
        size = self._frames[-1] if self._frames else 0
        await self._record(Received("event", update, time.time(), size))
        for event in update.get("events") or []:
            if str(event.get("name", "")).startswith(BACKEND_EVENT_PREFIX):  # queued for the server: send back
                await self.send(event["name"], **(event.get("payload") or {}))

    async def _record(self, item: Received) -> None:
        async with self._arrived:
            self.received.append(item)
            self._arrived.notify_all()
