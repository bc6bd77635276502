"""The fault suite's rig: the scaled setup on its own PostgreSQL and Redis, a fake KIE.ai, reconnecting tabs.

Everything here may be stopped, restarted, killed or frozen by a test without touching
the machine's shared services: PostgreSQL and Redis are private processes on free ports
(`e2e/private_services.py`), the workers and HAProxy run under the cluster's own
supervisord. Tabs are `SocketTab`s that reconnect as the page does. A case clicks
Generate from its tabs (resending the same request id until the job exists, as a page
resends an event a dropped socket lost; the id makes creation idempotent), then
measures what every case reports: jobs lost, jobs doubled, seconds until every tab
shows what the database holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from deploy.cluster import Cluster
from e2e.private_services import PrivatePostgres, PrivateRedis
from e2e.seed import Project, Seeder
from e2e.server import FakeProviderServer
from e2e.socket_tabs import SocketTab, handler_name

GENERATE = handler_name("rxapp.states.room", "ProjectRoom", "generate")
MODEL = "google/nano-banana"
KIE_KEY, KIE_HMAC = "faults-kie-key", "faults-kie-hmac"
#: How long a click may wait for its job row before the tab sends it again.
CLICK_RESEND_S = 3.0


@dataclass
class Figures:
    """What one fault case reports."""

    case: str
    jobs: int
    lost: int
    doubled: int
    converge_s: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class FaultRig:
    cluster: Cluster
    postgres: PrivatePostgres
    redis: PrivateRedis
    kie: FakeProviderServer

    @property
    def dsn(self) -> str:
        return self.cluster.env["DATABASE_URL"].replace("+psycopg", "")

    def project(self, name: str) -> Project:
        seeder = Seeder(
            self.cluster.url, Path(self.cluster.env["DATA_DIR"]), self.cluster.env["DATABASE_URL"], MODEL, KIE_KEY
        )
        try:
            return seeder.project(name, finished_jobs=0, pending_jobs=0)
        finally:
            seeder.close()

    # the database's truth ----------------------------------------------------
    def _rows(self, sql: str, *params: object) -> list[tuple]:
        return rows_of(self.dsn, sql, *params)

    def count(self, sql: str, *params: object) -> int:
        """The one number a `SELECT count(*) ...` answers."""
        return int(self._rows(sql, *params)[0][0])

    def truth(self, project_id: int) -> dict[str, str] | None:
        """Each job of the project and its status; None while the database does not answer."""
        try:
            return {job_id: status.lower() for job_id, status in self._rows(JOBS_OF, project_id)}
        except psycopg.Error:
            return None

    def doubled(self, project_id: int) -> int:
        """Jobs submitted twice to the provider, completed twice, or given two results."""
        doubled = {job for job, n in self._rows(COMPLETIONS, project_id) if n > 1}
        doubled |= {job for job, n in self._rows(RESULTS, project_id) if n > 1}
        tasks = Counter(
            record["param"].split("/api/webhooks/kie/", 1)[1].split("/", 1)[0]
            for record in self.kie.state("tasks")["records"]
        )
        jobs = {job_id for (job_id,) in self._rows("SELECT id FROM job WHERE project_id = %s", project_id)}
        doubled |= {job for job, n in tasks.items() if n > 1 and job in jobs}
        return len(doubled)

    def lost(self, project_id: int, request_ids: list[str]) -> int:
        """Clicks without a job, and jobs that did not complete."""
        completed = {
            request_id
            for request_id, status in self._rows(BY_REQUEST, project_id)
            if request_id and status.lower() == "completed"
        }
        return len(set(request_ids) - completed)

    def tasks_of(self, project_name: str) -> list[dict[str, Any]]:
        """The provider's tasks for a project's node (its prompt is the project's name)."""
        return [r for r in self.kie.state("tasks")["records"] if f'"{project_name}"' in r["param"]]

    def callbacks_delivered(self, project_name: str) -> int:
        tasks = {r["taskId"] for r in self.tasks_of(project_name)}
        return sum(1 for c in self.kie.state("tasks")["callbacks"] if c["taskId"] in tasks and c.get("status") == 200)

    # tabs ----------------------------------------------------------------------
    async def open_tabs(self, project: Project, count: int) -> list[SocketTab]:
        tabs = [SocketTab(self.cluster.url, project.id, reconnect=True) for _ in range(count)]
        await asyncio.gather(*(tab.open(timeout_s=60) for tab in tabs))
        return tabs

    async def clicks(self, tabs: list[SocketTab], project: Project, count: int, label: str) -> list[str]:
        """`count` clicks spread over the tabs, all at once; their request ids."""
        ids = [f"{label}-{i}-{uuid.uuid4().hex[:6]}" for i in range(count)]
        await click_all(tabs, self.dsn, project.node_id, ids)
        return ids

    async def converge(self, tabs: list[SocketTab], project: Project, jobs: int, timeout_s: float = 120) -> float:
        """Seconds until the project has `jobs` jobs, all completed, and every tab shows exactly that."""
        began = time.monotonic()
        last: Any = None
        while time.monotonic() - began < timeout_s:
            truth = await asyncio.to_thread(self.truth, project.id)
            if truth is not None and len(truth) == jobs and set(truth.values()) == {"completed"}:
                screens = [dict(tab.screen()[0]) for tab in tabs]
                if all(screen == truth for screen in screens):
                    return round(time.monotonic() - began, 2)
                last = [sum(1 for s in screen.values() if s == "completed") for screen in screens]
            else:
                last = truth if truth is None else Counter(truth.values())
            await asyncio.sleep(0.1)
        raise AssertionError(f"tabs did not converge in {timeout_s}s; last seen: {last}")

    # HAProxy -------------------------------------------------------------------
    def all_up(self) -> bool:
        try:
            return all(status == "UP" for status in self.cluster.server_states().values())
        except httpx.HTTPError:
            return False


JOBS_OF = "SELECT id, status FROM job WHERE project_id = %s"
REQUESTED = "SELECT client_request_id FROM job WHERE client_request_id = ANY(%s)"
BY_REQUEST = "SELECT client_request_id, status FROM job WHERE project_id = %s"
COMPLETIONS = (
    "SELECT s.job_id, count(*) FROM jobstep s JOIN job j ON j.id = s.job_id "
    "WHERE j.project_id = %s AND s.step = 'status.completed' GROUP BY s.job_id"
)
RESULTS = (
    "SELECT r.job_id, count(*) FROM noderesult r JOIN job j ON j.id = r.job_id "
    "WHERE j.project_id = %s GROUP BY r.job_id"
)


def rows_of(dsn: str, sql: str, *params: object) -> list[tuple]:
    with psycopg.connect(dsn, connect_timeout=3, autocommit=True) as connection:
        return list(connection.execute(sql, params))  # type: ignore[arg-type]  # the suites' own fixed SQL


def requested_of(dsn: str, request_ids: list[str]) -> set[str]:
    """The request ids among `request_ids` that made a job (none while the database does not answer)."""
    try:
        return {row[0] for row in rows_of(dsn, REQUESTED, request_ids)}
    except psycopg.Error:
        return set()


async def click_all(
    tabs: list[SocketTab], dsn: str, node_id: int, request_ids: list[str], timeout_s: float = 60
) -> None:
    """Generate once per request id, from the tabs in turn, all at once; until each made its job.

    A click whose job is not there `CLICK_RESEND_S` later is sent again, as a page resends an
    event a dropped socket lost (the id makes creation idempotent); a tab without a socket at
    that moment sends at the next round.
    """
    tab_of = {request_id: tabs[i % len(tabs)] for i, request_id in enumerate(request_ids)}
    deadline = time.monotonic() + timeout_s
    missing = list(request_ids)
    while missing:
        for request_id in missing:
            if tab_of[request_id].connected:
                with contextlib.suppress(Exception):  # the socket dropped between the check and the send
                    await tab_of[request_id].send(GENERATE, node_id=node_id, client_request_id=request_id)
        resend_at = min(time.monotonic() + CLICK_RESEND_S, deadline)
        while missing and time.monotonic() < resend_at:
            await asyncio.sleep(0.2)
            made = await asyncio.to_thread(requested_of, dsn, missing)
            missing = [r for r in missing if r not in made]
        if missing and time.monotonic() >= deadline:
            raise AssertionError(f"clicks made no job in {timeout_s}s: {missing}")


def figures_table(figures: list[Figures]) -> str:
    lines = ["| case | jobs | lost | doubled | converged in |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {f.case} | {f.jobs} | {f.lost} | {f.doubled} | {f.converge_s:.1f} s |" for f in figures]
    return "\n".join(lines)


def as_json(figures: list[Figures]) -> list[dict[str, Any]]:
    return [asdict(f) for f in figures]
