"""Projects made straight in a running app's database, and their jobs completed through its webhook.

For tests and benchmarks that need a project of many jobs quickly: rows are written with
the core's own services (so triggers, versions and change events are the real ones) and
completions go through the app's signed KIE.ai webhook route, as a provider's would.
Tabs opened afterwards read the project from the database like any tab.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import httpx
from pydantic import SecretStr
from sqlmodel import select

from core.changes import ChangeNotifier, ChangeWriter
from core.contract import NodeKind, TaskRef
from core.db import Database
from core.jobs.book import JobBook
from core.media.store import MediaStore
from core.notebook.canvas import Canvas
from core.people.accounts import Accounts
from core.settings import Settings
from e2e.server import AppServer
from models.tables import JobStep
from providers.kie import sign
from providers.registry import build_registry


class SampleError(RuntimeError):
    """A sample that cannot be true (missing, or effect before cause): a benchmark run stops."""


@dataclass
class Project:
    """A project made straight in the app's database, with jobs waiting for their callback."""

    id: int
    node_id: int
    pending: list[tuple[str, str, str]]  # job id, callback token, provider task id


def _no_calls(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"the seeder called a provider: {request.method} {request.url}")


class Seeder:
    """Makes projects and jobs in the app's database and completes them through its webhook."""

    def __init__(
        self, url: str, data_dir: Path, database_url: str, model: str, kie_key: str = "", kie_hmac: str = ""
    ) -> None:
        settings = Settings(
            data_dir=data_dir, database_url=database_url, public_base_url=url, kie_api_key=SecretStr(kie_key)
        )
        self.url, self.hmac, self.model = url, kie_hmac, model
        self.db = Database(settings.db_url)
        writer = ChangeWriter(self.db.session, ChangeNotifier(), self.db.read_session)
        # Its providers only name the models: the seeder never calls one. Their client refuses
        # to, so it opens no connection pool that would need closing (an async close, which the
        # seeder's sync callers could not await).
        http = httpx.AsyncClient(transport=httpx.MockTransport(_no_calls))
        registry = build_registry(settings, http, self.db, lambda *_: None)  # it renders nothing: no progress
        self.canvas = Canvas(
            writer,
            registry,
            MediaStore(settings.media_dir),
            max_prompt_chars=settings.max_prompt_chars,
            max_project_name_chars=settings.max_project_name_chars,
            queue_rows=settings.queue_rows,
        )
        self.book = JobBook(writer, registry)
        self.owner = Accounts(self.db.session, self.db.read_session).local_user()

    def project(self, name: str, finished_jobs: int, pending_jobs: int) -> Project:
        project = self.canvas.create_project(self.owner.id, name)
        node = self.canvas.add_node(project.id, NodeKind.TEXT_TO_IMAGE)
        self.canvas.update_node(node.id, prompt=name, model=self.model)
        for _ in range(finished_jobs):
            self.book.cancel(self.book.create(node.id).id)
        pending = []
        for i in range(pending_jobs):
            view = self.book.create(node.id)
            task_id = f"{name}-{i}-{time.time_ns()}"
            self.book.mark_submitted(view.id, TaskRef(task_id))
            pending.append((view.id, self.book.get(view.id).callback_token, task_id))
        return Project(project.id, node.id, pending)

    async def complete(self, http: httpx.AsyncClient, job: tuple[str, str, str], image_url: str) -> httpx.Response:
        """Post the provider's signed success callback for `job`, its result at `image_url`."""
        job_id, token, task_id = job
        stamp = str(int(time.time()))
        data = {"taskId": task_id, "state": "success", "resultJson": json.dumps({"resultUrls": [image_url]})}
        headers = {"X-Webhook-Timestamp": stamp, "X-Webhook-Signature": sign(self.hmac, task_id, stamp)}
        return await http.post(
            f"{self.url}/api/webhooks/kie/{job_id}/{token}", json={"code": 200, "data": data}, headers=headers
        )

    def step_at(self, job_id: str, step: str) -> float:
        """When the app recorded `step` of the job (its first, epoch seconds), from the job's timeline."""
        with self.db.session() as session:
            query = select(JobStep.at).where(JobStep.job_id == job_id, JobStep.step == step)
            stamps = list(session.exec(query))
        if not stamps:
            raise SampleError(f"job {job_id} has no {step} step")
        first = min(stamps)
        return (first if first.tzinfo else first.replace(tzinfo=UTC)).timestamp()

    def close(self) -> None:
        self.db.engine.dispose()


def seeder_of(app: AppServer, model: str, kie_key: str = "", kie_hmac: str = "") -> Seeder:
    return Seeder(app.url, app.data_dir, app.env.get("DATABASE_URL", ""), model, kie_key, kie_hmac)
