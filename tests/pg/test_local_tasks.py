"""The local provider's tasks live in the database: any worker answers, dead workers' renders move on."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import httpx
import pytest
import respx
from starlette.applications import Starlette

from core.contract import JobStatus, SubmitRequest, TaskRef
from core.db import Database
from models.tables import utcnow
from providers.local import LocalProvider
from providers.local_tasks import LocalTask
from tests.wait import eventually

CALLBACK = "http://testapp/api/webhooks/local/job-1/token"


@pytest.fixture
def db(any_url: str) -> Iterator[Database]:
    db = Database(any_url)
    db.migrate()
    yield db
    db.engine.dispose()


@pytest.fixture
async def callbacks() -> AsyncIterator[respx.Route]:
    async with respx.mock(assert_all_called=False) as router:
        yield router.post(CALLBACK).respond(200)


def worker(db: Database, http: httpx.AsyncClient) -> LocalProvider:
    """One worker process's local provider (all of them share the secret and the database)."""
    return LocalProvider(db=db, own_url="http://testapp", http=http, delay_s=0.02, secret="shared")


async def until_finished(provider: LocalProvider, task: TaskRef) -> JobStatus:
    update = await eventually(
        lambda: provider.query(task), lambda update: update.status.is_terminal, what=f"task {task.task_id} to finish"
    )
    return update.status


async def fetch_output(provider: LocalProvider, url: str) -> httpx.Response:
    app = Starlette(routes=list(provider.routes))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testapp") as client:
        return await client.get(url)


async def test_another_worker_answers_status_and_serves_the_output(db: Database, callbacks: respx.Route) -> None:
    async with httpx.AsyncClient() as http:
        renderer, other = worker(db, http), worker(db, http)
        task = await renderer.submit(SubmitRequest("job-1", "local/sketch", "a fox", "1:1", CALLBACK))
        assert await until_finished(other, task) == JobStatus.COMPLETED
        [url] = (await other.query(task)).result_urls
        response = await fetch_output(other, url)
        await eventually(lambda: callbacks.call_count, lambda calls: calls >= 2, what="the completed callback")
    assert response.status_code == 200 and response.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert [call.request.url for call in callbacks.calls] == [CALLBACK, CALLBACK]  # running, completed
    assert (await fetch_output(other, "/api/providers/local/outputs/nope.png")).status_code == 404


async def test_a_render_whose_worker_died_is_taken_over(db: Database, callbacks: respx.Route) -> None:
    request = {"job_id": "job-1", "model": "local/sketch", "prompt": "a fox", "aspect_ratio": "1:1"}
    with db.session() as session:
        session.add(
            LocalTask(
                id="local-orphan",
                job_id="job-1",
                request={**request, "callback_url": CALLBACK, "input_image_urls": [], "seed": 0},
                status=JobStatus.RUNNING.value,
                claimed_by="dead-worker",
                lease_until=utcnow() - timedelta(seconds=1),
            )
        )
    async with httpx.AsyncClient() as http:
        survivor = worker(db, http)
        assert await until_finished(survivor, TaskRef("local-orphan")) == JobStatus.COMPLETED
    assert callbacks.called


async def test_a_live_workers_render_is_left_alone(db: Database, callbacks: respx.Route) -> None:
    async with httpx.AsyncClient() as http:
        renderer, other = worker(db, http), worker(db, http)
        renderer.delay_s = other.delay_s = 0.5
        task = await renderer.submit(SubmitRequest("job-1", "local/sketch", "a fox", "1:1", CALLBACK))
        await other.query(task)
        assert other._work == {} and task.task_id in renderer._work
        await renderer.cancel(task)
        assert (await other.query(task)).status == JobStatus.CANCELLED
