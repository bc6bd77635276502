"""The progress board: what a report changes, coalescing to 4 pushes a second, previews, the end of a job."""

from __future__ import annotations

import asyncio
import io
import json
import os
from pathlib import Path

import httpx
import pytest
from PIL import Image

from core.contract import JobStatus, NodeKind, TaskProgress, TaskRef, TaskUpdate
from core.jobs.progress import MIN_PUSH_INTERVAL_S, Phase, ProgressBoard, ProgressRow
from core.media.previews import MAX_SIDE, PreviewStore, shrink
from core.realtime.progress_relay import MAX_PAYLOAD_BYTES, ProgressRelay
from core.root import Core
from rxapp.api import build_api
from rxapp.auth import SESSION_COOKIE
from tests.wait import TERMINAL, eventually, job_reaches

JOB = "0123456789abcdef0123456789abcdef"


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.effect_noise((width, height), 40).convert("RGB").save(out, format="PNG")
    return out.getvalue()


class Pushes:
    """The rows a board pushed to this process's tabs, with when (the loop's clock)."""

    def __init__(self, board: ProgressBoard) -> None:
        self.rows: list[ProgressRow] = []
        self.times: list[float] = []
        board.subscribe(self.record)

    async def record(self, row: ProgressRow) -> None:
        self.rows.append(row)
        self.times.append(asyncio.get_running_loop().time())


@pytest.fixture
def board(tmp_path: Path) -> ProgressBoard:
    return ProgressBoard(PreviewStore(tmp_path / "previews"), lambda job_id: (7, 3))


async def test_a_burst_of_reports_goes_out_at_most_four_times_a_second_ending_with_the_last(
    board: ProgressBoard,
) -> None:
    pushes = Pushes(board)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for step in range(1, 101):  # a sampler reporting every 10 ms for a second
        board.report(JOB, JobStatus.RUNNING, TaskProgress(percent=step))
        await asyncio.sleep(0.01)
    elapsed = loop.time() - started
    await board.drain()

    assert pushes.rows[0].percent is not None and pushes.times[0] - started < MIN_PUSH_INTERVAL_S  # the first at once
    gaps = [b - a for a, b in zip(pushes.times, pushes.times[1:], strict=False)]
    assert min(gaps) >= MIN_PUSH_INTERVAL_S * 0.95, gaps
    assert len(pushes.rows) <= elapsed / MIN_PUSH_INTERVAL_S + 2
    assert pushes.rows[-1].percent == 100  # nothing of the last word lost
    percents = [row.percent or 0 for row in pushes.rows]
    assert percents == sorted(percents) and len(set(percents)) >= 3
    versions = [row.version for row in pushes.rows]
    assert versions == sorted(set(versions))


async def test_position_holds_while_waiting_and_percent_while_working(board: ProgressBoard) -> None:
    pushes = Pushes(board)
    steps: list[tuple[JobStatus | Phase, TaskProgress | None]] = [
        (JobStatus.SUBMITTED, TaskProgress(queue_position=3)),
        (JobStatus.SUBMITTED, None),  # a poll that says nothing new
        (JobStatus.RUNNING, TaskProgress(percent=140.0)),  # clamped
        (JobStatus.RUNNING, None),
        (Phase.STORING, None),
        (JobStatus.COMPLETED, TaskProgress(percent=5)),  # an end is the change feed's to tell
    ]
    seen = []
    for status, live in steps:
        board.report(JOB, status, live)
        await board.drain()
        seen.append((pushes.rows[-1].phase, pushes.rows[-1].position, pushes.rows[-1].percent))
    assert seen == [
        ("waiting", 3, None),
        ("waiting", 3, None),
        ("running", None, 100),
        ("running", None, 100),
        ("storing", None, 100),
        ("storing", None, 100),
    ]
    assert (pushes.rows[-1].project_id, pushes.rows[-1].node_id) == (7, 3)


async def test_a_preview_is_shrunk_to_a_small_jpeg_and_served_until_the_job_ends(board: ProgressBoard) -> None:
    pushes = Pushes(board)
    board.report(JOB, JobStatus.RUNNING, TaskProgress(percent=40, preview=png(1024, 768)))
    await board.drain()
    row = pushes.rows[-1]
    assert row.preview_url.startswith(f"/api/previews/7/{JOB}.jpg?v=")
    stored = board.previews.read(7, JOB)
    assert stored is not None
    with Image.open(io.BytesIO(stored)) as image:
        assert (image.format, max(image.size)) == ("JPEG", MAX_SIDE)
    assert board.rows(7) == [row] and board.rows(8) == []

    board.forget(JOB)
    board.report(JOB, JobStatus.RUNNING, TaskProgress(percent=90))  # a late word after the end
    await board.drain()
    assert board.previews.read(7, JOB) is None
    assert board.rows(7) == [] and pushes.rows[-1] == row


def test_previews_refuse_what_is_no_image_and_names_that_are_no_job(tmp_path: Path) -> None:
    store = PreviewStore(tmp_path)
    with pytest.raises(ValueError, match="not an image"):
        shrink(b"<html>")
    assert store.path_for(1, "../../app.db") is None
    small = shrink(png(100, 60))
    with Image.open(io.BytesIO(small)) as image:
        assert (image.format, image.size) == ("JPEG", (100, 60))


async def test_a_row_from_another_worker_is_kept_unless_older_and_never_comes_back_after_the_end(
    board: ProgressBoard,
) -> None:
    pushes = Pushes(board)
    newer = ProgressRow(JOB, 7, 3, "running", None, 60, "", version=20)
    await board.heard(newer)
    await board.heard(ProgressRow(JOB, 7, 3, "running", None, 40, "", version=10))
    assert board.rows(7) == [newer] and pushes.rows == [newer]
    board.forget(JOB)
    await board.heard(ProgressRow(JOB, 7, 3, "running", None, 80, "", version=30))
    assert board.rows(7) == [] and pushes.rows == [newer]


async def test_a_relayed_row_is_small_parses_back_and_skips_its_own_sender(board: ProgressBoard) -> None:
    row = ProgressRow(JOB, 7, 3, "waiting", 12, None, f"/api/previews/7/{JOB}.jpg?v=1733500000000", 1733500000000)
    sender = ProgressRelay(engine=None, board=board, origin="host:1:aaaaaa")  # type: ignore[arg-type]
    payload = sender.payload(row)
    assert len(payload.encode()) < 400 < MAX_PAYLOAD_BYTES
    assert ProgressRow.parse(json.loads(payload)) == row

    pushes = Pushes(board)
    await sender.receive(payload)  # its own: its tabs had it already
    assert pushes.rows == []
    await ProgressRelay(engine=None, board=board, origin="host:2:bbbbbb").receive(payload)  # type: ignore[arg-type]
    assert pushes.rows == [row]
    await ProgressRelay(engine=None, board=board, origin="x").receive('{"id": 1}')  # malformed: dropped
    assert pushes.rows == [row]


async def test_a_local_job_reports_rising_percent_and_a_preview_then_its_row_ends(core: Core) -> None:
    pushes = Pushes(core.progress)
    core.registry.get("local").delay_s = 1.2  # type: ignore[attr-defined]  # long enough for several pushes
    project = core.canvas.create_project(core.accounts.local_user().id, "progress")
    node = core.canvas.add_node(project.id, NodeKind.TEXT_TO_IMAGE)
    core.canvas.update_node(node.id, prompt="a lighthouse at dusk")
    job = await core.pipeline.generate(node.id)
    await job_reaches(core, job.id, *TERMINAL, timeout_s=10)
    await core.pipeline.drain()

    mine = [row for row in pushes.rows if row.id == job.id]
    percents = [row.percent for row in mine if row.percent is not None]
    # Rising; the last step's push may be overtaken by the end itself, which drops the row.
    assert len(percents) >= 3 and percents == sorted(percents) and percents[0] > 0 and percents[-1] <= 100, mine
    assert all(row.node_id == node.id and row.project_id == project.id for row in mine)
    assert any(row.preview_url for row in mine)
    await eventually(lambda: core.progress.rows(project.id), lambda rows: rows == [], what="the row to end")
    assert core.progress.previews.read(project.id, job.id) is None


async def test_what_a_poll_or_webhook_says_reaches_the_board_and_its_end_drops_the_row(core: Core) -> None:
    pushes = Pushes(core.progress)
    project = core.canvas.create_project(core.accounts.local_user().id, "polled")
    node = core.canvas.add_node(project.id, NodeKind.TEXT_TO_IMAGE)
    core.canvas.update_node(node.id, prompt="a harbour")
    job = core.jobs.create(node.id)
    core.jobs.mark_submitted(job.id, TaskRef("t1"))

    await core.pipeline.apply(job.id, TaskUpdate("t1", JobStatus.SUBMITTED, live=TaskProgress(queue_position=2)))
    await core.progress.drain()
    assert [(r.phase, r.position) for r in core.progress.rows(project.id)] == [("waiting", 2)]
    await core.pipeline.apply(job.id, TaskUpdate("t1", JobStatus.RUNNING))  # KIE.ai's `generating`: no more
    await core.progress.drain()
    assert [(r.phase, r.position, r.percent) for r in core.progress.rows(project.id)] == [("running", None, None)]
    await core.pipeline.apply(job.id, TaskUpdate("t1", JobStatus.FAILED, error="no"))
    assert core.progress.rows(project.id) == []
    assert [r.phase for r in pushes.rows] == ["waiting", "running"]


async def test_a_preview_is_served_to_the_projects_members_only(core: Core) -> None:
    alice, token = core.accounts.sign_up("alice@example.com", "long enough")
    _, stranger = core.accounts.sign_up("mallory@example.com", "long enough")
    project = core.canvas.create_project(alice.id, "private")
    node = core.canvas.add_node(project.id, NodeKind.TEXT_TO_IMAGE)
    core.canvas.update_node(node.id, prompt="a secret")
    job = core.jobs.create(node.id)
    core.progress.report(job.id, JobStatus.RUNNING, TaskProgress(preview=png(600, 400)))
    await core.progress.drain()
    (row,) = core.progress.rows(project.id)

    async def get(session: str) -> httpx.Response:
        cookies = {SESSION_COOKIE: session} if session else None
        transport = httpx.ASGITransport(app=build_api(core))
        async with httpx.AsyncClient(transport=transport, base_url="http://testapp", cookies=cookies) as client:
            return await client.get(row.preview_url)

    mine = await get(token)
    assert (mine.status_code, mine.headers["content-type"]) == (200, "image/jpeg")
    assert mine.content == core.progress.previews.read(project.id, job.id)
    for outsider in (stranger, ""):  # another account; nobody signed in (the local user)
        assert (await get(outsider)).status_code == 404
    core.progress.forget(job.id)
    assert (await get(token)).status_code == 404


def test_previews_nobody_replaced_for_long_are_swept(tmp_path: Path) -> None:
    store = PreviewStore(tmp_path)
    store.save(1, "old", png(10, 10))
    store.save(1, "fresh", png(10, 10))
    old = store.path_for(1, "old")
    assert old is not None
    os.utime(old, (1_000, 1_000))
    assert store.delete_older_than(600, now=2_000) == 1
    assert store.read(1, "old") is None and store.read(1, "fresh") is not None
