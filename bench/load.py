"""The load tier's simulated users, for locust: tabs on several projects clicking Generate.

Run by `bench/run.py` (the `load` tier) as its own process, headless and bounded:
`locust -f bench/load.py --headless -u USERS -r RATE -t SECONDS --host URL`, loopback
only. Locust patches the standard library with gevent, which is why it never runs
inside the benchmark's own (asyncio, Playwright) process.

Each user is one tab speaking the page's socket protocol (as `e2e/socket_tabs.py`, with
python-socketio's threaded client, which gevent turns into greenlets): it opens one of
the projects named in `LOAD_PROJECTS` ("project:node,..."), then clicks Generate again
and again. Locust counts each click as a request whose time is click -> the job's row
reaching this tab, and a failure when no row comes in `ROW_TIMEOUT_S`. When the run
stops, every tab's arrival time of each job completed goes to the JSON file named by
`LOAD_SAMPLES`, with the request ids clicked (each once its row came or its wait ran
out); the benchmark ties those arrivals to the jobs' `webhook.received` steps.
"""

from __future__ import annotations

import itertools
import json
import os
import time
import uuid
from typing import Any

import socketio
from gevent.event import Event
from locust import User, between, events, task

from e2e.socket_tabs import BACKEND_EVENT_PREFIX, BOOT_EVENT, EVENT_NAMESPACE, handler_name

GENERATE = handler_name("rxapp.states.room", "ProjectRoom", "generate")
ROW_TIMEOUT_S = 10.0
OPEN_TIMEOUT_S = 30.0
PROJECTS = [tuple(int(n) for n in pair.split(":")) for pair in os.environ.get("LOAD_PROJECTS", "").split(",") if pair]
TURNS = itertools.count()
#: Every tab's (job id, epoch seconds it saw the job completed), and every request id clicked.
SEEN: list[tuple[str, float]] = []
CLICKED: list[str] = []


class Tab(User):
    # A user thinks 1-3 s between clicks: 12 users offer about 6 jobs/s.
    wait_time = between(1, 3)

    def on_start(self) -> None:
        self.project_id, self.node_id = PROJECTS[next(TURNS) % len(PROJECTS)]
        self.waiting: dict[str, Event] = {}
        self.completed: set[str] = set()
        self.opened = Event()  # its snapshot came
        self.hydrated = Event()  # and Reflex says its on_load ran: a click now acts on the project
        path = f"/p/{self.project_id}"
        router = {"pathname": path, "asPath": path, "query": {"project_id": str(self.project_id)}}
        self.router = router
        # websocket-client sends an Origin of its own unless told which: the app refuses two.
        client = self.client = socketio.Client(reconnection=False, websocket_extra_options={"origin": self.host})
        client.on("canvas.snapshot", self._rows, namespace=EVENT_NAMESPACE)
        client.on("canvas.change", self._rows, namespace=EVENT_NAMESPACE)
        client.on("event", self._update, namespace=EVENT_NAMESPACE)
        started = time.perf_counter()
        try:
            client.connect(
                f"{self.host}?token={uuid.uuid4()}",
                socketio_path="_event",
                namespaces=[EVENT_NAMESPACE],
                transports=["websocket"],
                auth={"event": {"name": BOOT_EVENT, "payload": {}, "router_data": router}},
                wait_timeout=OPEN_TIMEOUT_S,
            )
            if not (self.opened.wait(OPEN_TIMEOUT_S) and self.hydrated.wait(OPEN_TIMEOUT_S)):
                raise TimeoutError(f"project {self.project_id} did not open in {OPEN_TIMEOUT_S}s")
            self._report("open", started)
        except Exception as exc:
            self._report("open", started, exc)
            raise

    def on_stop(self) -> None:
        self.client.disconnect()

    @task
    def generate(self) -> None:
        request_id = f"load-{uuid.uuid4().hex}"
        arrived = self.waiting[request_id] = Event()
        started = time.perf_counter()
        payload = {"node_id": self.node_id, "client_request_id": request_id}
        self.client.emit("event", {"name": GENERATE, "payload": payload, "router_data": self.router}, EVENT_NAMESPACE)
        ok = arrived.wait(ROW_TIMEOUT_S)
        self.waiting.pop(request_id, None)
        CLICKED.append(request_id)  # a click the run's end cut short is not counted
        self._report("click -> row", started, None if ok else TimeoutError(f"no row in {ROW_TIMEOUT_S}s"))

    def _report(self, name: str, started: float, exception: Exception | None = None) -> None:
        events.request.fire(
            request_type="socket",
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=exception,
            context={},
        )

    def _rows(self, message: dict[str, Any]) -> None:
        now = time.time()
        if "jobs" in message and "base" not in message:  # a snapshot: the tab is open
            self.opened.set()
        for job in message.get("jobs", []):
            if (waiting := self.waiting.get(job.get("client_request_id") or "")) is not None:
                waiting.set()
            if job["status"] == "completed" and job["id"] not in self.completed:
                self.completed.add(job["id"])
                if "base" in message:  # seen arriving, not read from a snapshot
                    SEEN.append((job["id"], now))

    def _update(self, update: dict[str, Any]) -> None:
        if (update.get("delta") or {}).get(BACKEND_EVENT_PREFIX[:-1], {}).get("is_hydrated_rx_state_") is True:
            self.hydrated.set()
        for event in update.get("events") or []:  # events the server queued for the page (on_load): send back
            if str(event.get("name", "")).startswith(BACKEND_EVENT_PREFIX):
                payload = event.get("payload") or {}
                self.client.emit(
                    "event",
                    {"name": event["name"], "payload": payload, "router_data": self.router},
                    namespace=EVENT_NAMESPACE,
                )


@events.quitting.add_listener
def write_samples(environment: Any, **_: Any) -> None:
    path = os.environ.get("LOAD_SAMPLES")
    if path:
        with open(path, "w") as handle:
            json.dump({"seen": SEEN, "clicked": CLICKED}, handle)
