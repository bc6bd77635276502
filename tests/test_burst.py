"""A burst of 1,000 callbacks, duplicated and out of order, completes every job exactly once."""

from __future__ import annotations

import asyncio
import json
import random

import respx
from sqlmodel import col, select

from core.contract import JobStatus, NodeKind, TaskRef
from core.root import Core
from models.tables import JobStep, NodeResult
from providers.kie import TEXT_MODEL
from tests.kie_mock import IMAGE_URL, RECORD, ok
from tests.providers.signing import kie_headers

HMAC = "burst-hmac"
JOBS = 250
DELIVERIES = 1000


def callback_data(task_id: str, state: str) -> dict[str, str]:
    data: dict[str, str] = {"taskId": task_id, "state": state}
    if state == "success":
        data["resultJson"] = json.dumps({"resultUrls": [IMAGE_URL]})
    if state == "fail":
        data["failMsg"] = "late failure"
    return data


def callback(task_id: str, state: str) -> tuple[dict[str, str], bytes]:
    data = callback_data(task_id, state)
    return kie_headers(HMAC, task_id), json.dumps({"code": 200, "data": data}).encode()


async def test_burst_of_mixed_callbacks_completes_each_job_once(kie_core: Core, kie_api: respx.MockRouter) -> None:
    # Callbacks only prompt a recordInfo query (their body is not signed); at KIE.ai every task succeeded.
    kie_api.get(RECORD).mock(side_effect=lambda request: ok(callback_data(request.url.params["taskId"], "success")))
    kie = kie_core.registry.get("kie")
    kie.hmac_key = HMAC  # type: ignore[attr-defined]
    project = kie_core.canvas.ensure_default_project(kie_core.accounts.local_user().id)
    node = kie_core.canvas.add_node(project.id, NodeKind.TEXT_TO_IMAGE)
    kie_core.canvas.update_node(node.id, prompt="burst", model=TEXT_MODEL)
    jobs = []
    for i in range(JOBS):
        view = kie_core.jobs.create(node.id)
        kie_core.jobs.mark_submitted(view.id, TaskRef(f"burst-{i}"))
        jobs.append((view.id, kie_core.jobs.get(view.id).callback_token, f"burst-{i}"))

    rng = random.Random(7)
    deliveries = [(job, "success") for job in jobs]  # every job gets its completion at least once
    while len(deliveries) < DELIVERIES:
        deliveries.append((rng.choice(jobs), rng.choice(["success", "success", "generating", "queuing", "fail"])))
    rng.shuffle(deliveries)
    limit = asyncio.Semaphore(32)

    async def deliver(job: tuple[str, str, str], state: str) -> int:
        job_id, token, task_id = job
        async with limit:
            outcome = await kie_core.webhooks.receive("kie", job_id, token, *callback(task_id, state))
            return outcome.status_code

    codes = await asyncio.gather(*(deliver(job, state) for job, state in deliveries))
    # A delivery identical to one already applied (a replay) gets 200 too, and changes nothing.
    assert set(codes) == {200}
    finished = [kie_core.jobs.get(job_id) for job_id, _, _ in jobs]
    by_status = {s: sum(j.status == s for j in finished) for s in JobStatus}
    # A "fail" that overtook its job's "success" wins honestly; nothing is lost, nothing doubles.
    assert by_status[JobStatus.COMPLETED] + by_status[JobStatus.FAILED] == JOBS
    completed = [j for j in finished if j.status == JobStatus.COMPLETED]
    assert all(j.image_path for j in completed)
    with kie_core.db.session() as session:
        results = list(session.exec(select(NodeResult.job_id)))
        endings = list(
            session.exec(select(JobStep.job_id).where(col(JobStep.step).in_(["status.completed", "status.failed"])))
        )
    assert sorted(results) == sorted(j.id for j in completed)  # one stored result per completed job, never two
    assert sorted(endings) == sorted(j.id for j in finished)  # each job finished exactly once
