"""The job lifecycle and the change feed, without a browser."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from core.contract import JobStatus, NodeKind, TaskRef, TaskUpdate
from core.errors import InvalidInput
from core.media.store import MEDIA_PREFIX, original_name
from core.root import Core
from core.settings import Settings
from models.tables import ChangeEvent
from providers.local import LocalProvider
from providers.local_render import render_text_to_image
from rxapp.api import build_api
from tests.conftest import LateBoundASGI
from tests.wait import job_reaches


async def test_generate_completes_through_webhook_and_stores_image(core: Core, node_id: int) -> None:
    view = await core.pipeline.generate(node_id, "req-1")
    assert view.status == "queued"
    await job_reaches(core, view.id, JobStatus.COMPLETED)
    job = core.jobs.get(view.id)
    assert job.provider_task_id and job.provider_task_id.startswith("local-")
    assert job.image_path and job.image_path.startswith("/media/")
    stored = core.media.file_for(job.image_path.removeprefix(MEDIA_PREFIX))
    assert stored is not None and stored.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    node = next(n for n in core.canvas.snapshot(job.project_id).nodes if n.id == node_id)
    assert node.image_url == job.image_path
    assert [e.url for e in node.history] == [job.image_path]


async def test_failing_prompt_fails_job_and_node(core: Core, node_id: int) -> None:
    core.canvas.update_node(node_id, prompt="please [fail] now")
    view = await core.pipeline.generate(node_id)
    await job_reaches(core, view.id, JobStatus.FAILED)
    job = core.jobs.get(view.id)
    assert "[fail]" in (job.error or "")
    node = next(n for n in core.canvas.snapshot(job.project_id).nodes if n.id == node_id)
    assert node.error == job.error
    assert node.image_url == ""


async def test_same_client_request_creates_one_job(core: Core, node_id: int) -> None:
    first = await core.pipeline.generate(node_id, "same")
    second = await core.pipeline.generate(node_id, "same")
    assert first.id == second.id


def test_status_never_moves_backwards(core: Core, node_id: int) -> None:
    job = core.jobs.create(node_id)
    assert core.jobs.mark_submitted(job.id, TaskRef("t1"))
    assert core.jobs.complete(job.id, "/media/x.png")
    version = core.jobs.get(job.id).version
    assert not core.jobs.mark_running(job.id)
    assert not core.jobs.fail(job.id, "late failure")
    assert not core.jobs.complete(job.id, "/media/y.png")
    after = core.jobs.get(job.id)
    assert (after.status, after.version, after.image_path) == (JobStatus.COMPLETED, version, "/media/x.png")


def test_every_change_gets_the_next_sequence_number(core: Core, project_id: int, node_id: int) -> None:
    start = core.canvas.snapshot(project_id).seq
    job = core.jobs.create(node_id)
    core.jobs.mark_submitted(job.id, TaskRef("t"))
    core.canvas.update_node(node_id, prompt="changed")
    changes = core.canvas.changes(project_id, start)
    assert changes.seq == start + 3
    assert [j.id for j in changes.jobs] == [job.id]
    assert changes.jobs[0].status == "submitted"
    assert [n.prompt for n in changes.nodes] == ["changed"]
    assert core.canvas.changes(project_id, changes.seq).jobs == []
    assert not changes.gap


def test_a_hole_in_the_feed_asks_for_a_full_resync(core: Core, project_id: int, node_id: int) -> None:
    start = core.canvas.snapshot(project_id).seq
    for prompt in ("one", "two", "three"):
        core.canvas.update_node(node_id, prompt=prompt)
    with core.db.session() as session:
        lost = session.exec(select(ChangeEvent).where(ChangeEvent.seq == start + 2)).one()
        session.delete(lost)
    assert core.canvas.changes(project_id, start).gap
    assert not core.canvas.changes(project_id, start + 2).gap  # after the hole all is there


async def test_notifier_publishes_after_commit(core: Core, project_id: int, node_id: int) -> None:
    with core.notifier.subscribe() as queue:
        await asyncio.to_thread(core.jobs.create, node_id)
        notice = await asyncio.wait_for(queue.get(), 2)
    assert notice.project_id == project_id
    assert notice.seq == core.canvas.snapshot(project_id).seq


async def test_cancel_wins_over_late_completion(core: Core, node_id: int) -> None:
    local = core.registry.get("local")
    assert isinstance(local, LocalProvider)
    local.delay_s = 600  # the render cannot finish first: only the cancel can end this job
    view = await core.pipeline.generate(node_id)
    submitted = await job_reaches(core, view.id, JobStatus.SUBMITTED, JobStatus.RUNNING)
    assert submitted.provider_task_id
    assert await core.pipeline.cancel(view.id)
    # The provider's completion arrives anyway, with an image the app could store: too late.
    image_url = "http://testapp" + core.links.sign(core.media.save(render_text_to_image("late", "1:1")))
    await core.pipeline.apply(view.id, TaskUpdate(submitted.provider_task_id, JobStatus.COMPLETED, (image_url,)))
    job = core.jobs.get(view.id)
    assert job.status == JobStatus.CANCELLED
    assert job.image_path is None


async def test_retry_creates_a_new_job_for_the_node(core: Core, node_id: int) -> None:
    core.canvas.update_node(node_id, prompt="[fail]")
    failed = await core.pipeline.generate(node_id)
    await job_reaches(core, failed.id, JobStatus.FAILED)
    core.canvas.update_node(node_id, prompt="works now")
    retried = await core.pipeline.retry_job(failed.id)
    assert retried.id != failed.id
    assert retried.retry_of == failed.id  # the queue shows "retry of" it
    await job_reaches(core, retried.id, JobStatus.COMPLETED)
    node = next(n for n in core.canvas.snapshot(retried_project(core, retried.id)).nodes if n.id == node_id)
    assert node.error == ""


def retried_project(core: Core, job_id: str) -> int:
    return core.jobs.get(job_id).project_id


async def test_edit_node_transforms_an_input_image(core: Core, project_id: int, node_id: int) -> None:
    source = await core.pipeline.generate(node_id)
    await job_reaches(core, source.id, JobStatus.COMPLETED)
    source_path = core.jobs.get(source.id).image_path
    edit = core.canvas.add_node(project_id, NodeKind.IMAGE_EDIT)
    core.canvas.update_node(edit.id, prompt="make it night")
    core.canvas.change_inputs(edit.id, add=[source_path])
    view = await core.pipeline.generate(edit.id)
    await job_reaches(core, view.id, JobStatus.COMPLETED)
    result = core.jobs.get(view.id).image_path
    assert result and result != source_path


def test_generate_refuses_empty_prompt_and_edit_without_inputs(core: Core, project_id: int) -> None:
    node = core.canvas.add_node(project_id, NodeKind.TEXT_TO_IMAGE)
    with pytest.raises(InvalidInput, match="prompt"):
        core.jobs.create(node.id)
    edit = core.canvas.add_node(project_id, NodeKind.IMAGE_EDIT)
    core.canvas.update_node(edit.id, prompt="x")
    with pytest.raises(InvalidInput, match="input image"):
        core.jobs.create(edit.id)


def test_projects_create_rename_and_persist(
    core: Core, settings: Settings, make_core: Callable[[Settings], Core]
) -> None:
    project = core.canvas.create_project(core.accounts.local_user().id, "  Holiday   cards ")
    assert project.name == "Holiday cards"
    core.canvas.rename_project(project.id, "<script>alert(1)</script>")
    reopened = make_core(settings)
    assert any(
        p.name == "<script>alert(1)</script>" for p in reopened.canvas.list_projects(reopened.accounts.local_user().id)
    )
    with pytest.raises(InvalidInput):
        core.canvas.rename_project(project.id, "   ")


def test_delete_node_keeps_its_jobs_detached(core: Core, project_id: int, node_id: int) -> None:
    job = core.jobs.create(node_id)
    core.canvas.delete_node(node_id)
    snapshot = core.canvas.snapshot(project_id)
    assert node_id not in [n.id for n in snapshot.nodes]
    assert [j.node_id for j in snapshot.jobs if j.id == job.id] == [0]


def test_an_older_job_finishing_late_does_not_replace_the_newer_result(core: Core, node_id: int) -> None:
    older = core.jobs.create(node_id)
    newer = core.jobs.create(node_id)
    assert core.jobs.complete(newer.id, "/media/new.png")
    assert core.jobs.complete(older.id, "/media/old.png")
    node = next(n for n in core.canvas.snapshot(core.jobs.get(older.id).project_id).nodes if n.id == node_id)
    assert node.image_url == "/media/new.png"
    assert sorted(e.url for e in node.history) == ["/media/new.png", "/media/old.png"]
    core.jobs.fail(core.jobs.create(node_id).id, "newest failed")
    node = next(n for n in core.canvas.snapshot(core.jobs.get(older.id).project_id).nodes if n.id == node_id)
    assert (node.image_url, node.error) == ("/media/new.png", "newest failed")


async def test_concurrent_completions_complete_once(core: Core, node_id: int) -> None:
    job = core.jobs.create(node_id)
    core.jobs.mark_submitted(job.id, TaskRef("t"))
    results = await asyncio.gather(
        *(asyncio.to_thread(core.jobs.complete, job.id, f"/media/{i}.png") for i in range(8))
    )
    assert results.count(True) == 1
    assert len(core.canvas.snapshot(core.jobs.get(job.id).project_id).nodes[0].history) == 1


async def test_the_same_image_stored_concurrently_is_stored_once(core: Core) -> None:
    names = set()
    for round_ in range(6):
        image = render_text_to_image(f"same {round_}", "1:1")
        urls = await asyncio.gather(*(asyncio.to_thread(core.media.save, image) for _ in range(32)))
        assert len(set(urls)) == 1
        names.add(urls[0].removeprefix(MEDIA_PREFIX))
    stored = sorted(p.name for p in core.media.root.iterdir())
    assert [name for name in stored if original_name(name) == name] == sorted(names)
    assert not [name for name in stored if name.endswith(".part")]  # each copy written once, whole


def test_a_ratio_the_model_cannot_draw_is_refused_and_changes_nothing(core: Core, node_id: int) -> None:
    offered = core.registry.model(core.canvas.update_node(node_id).model).aspect_ratios
    assert "21:9" not in offered
    with pytest.raises(InvalidInput, match="aspect ratios"):
        core.canvas.update_node(node_id, prompt="changed", aspect_ratio="21:9")
    node = core.canvas.update_node(node_id)
    assert (node.prompt, node.aspect_ratio) == ("a red fox in snow", "1:1")


def test_switching_model_keeps_a_ratio_only_if_the_new_model_draws_it(core: Core, node_id: int) -> None:
    local = core.canvas.update_node(node_id, aspect_ratio="16:9")
    other = next(
        m
        for m in core.registry.all_models()
        if m.kind == NodeKind.TEXT_TO_IMAGE and m.id != local.model and "16:9" in m.aspect_ratios
    )
    assert core.canvas.update_node(node_id, model=other.id).aspect_ratio == "16:9"
    assert core.canvas.update_node(node_id, model=local.model).aspect_ratio == "16:9"
    wide = next(r for r in other.aspect_ratios if r not in core.registry.model(local.model).aspect_ratios)
    core.canvas.update_node(node_id, model=other.id, aspect_ratio=wide)
    assert core.canvas.update_node(node_id, model=local.model).aspect_ratio == "1:1"


async def test_prompt_and_name_limits_come_from_settings(settings: Settings, project_id: int, node_id: int) -> None:
    small = Core.build(settings.model_copy(update={"max_prompt_chars": 10, "max_project_name_chars": 5}))
    try:
        with pytest.raises(InvalidInput, match="limited to 10"):
            small.canvas.update_node(node_id, prompt="eleven char")
        with pytest.raises(InvalidInput, match="limited to 5"):
            small.canvas.rename_project(project_id, "longer")
        assert small.canvas.update_node(node_id, prompt="ten chars!").prompt == "ten chars!"
    finally:
        await small.aclose()


class TunnelDown(httpx.AsyncBaseTransport):
    """This machine's view when `PUBLIC_BASE_URL` names a tunnel that is down: only loopback answers."""

    def __init__(self) -> None:
        self.app = LateBoundASGI()
        self.asgi = httpx.ASGITransport(app=self.app)
        self.refused: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host != "127.0.0.1":
            self.refused.append(str(request.url))
            raise httpx.ConnectError("the tunnel is down", request=request)
        return await self.asgi.handle_async_request(request)


async def test_local_jobs_finish_while_the_public_url_is_unreachable(tmp_path: Path, database_url: str) -> None:
    """The local provider published its results, and sent its callbacks, at `PUBLIC_BASE_URL`: with the
    tunnel down, the download failed until the poll gave up. The app's own work stays on loopback."""
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        public_base_url="https://abc-123.tunnel.example",
        local_delay_s=0.05,
    )
    transport = TunnelDown()
    core = Core.build(settings, transport=transport)
    transport.app.app = build_api(core)
    try:
        project_id = core.canvas.ensure_default_project(core.accounts.local_user().id).id
        source = core.canvas.add_node(project_id, NodeKind.TEXT_TO_IMAGE)
        core.canvas.update_node(source.id, prompt="a red fox in snow")
        first = await core.pipeline.generate(source.id)
        await job_reaches(core, first.id, JobStatus.COMPLETED, JobStatus.FAILED)
        edit = core.canvas.add_node(project_id, NodeKind.IMAGE_EDIT)
        core.canvas.update_node(edit.id, prompt="at night")
        core.notebook.add_input_node(edit.id, source.id)
        second = await core.pipeline.generate(edit.id)  # its input image is read from the app too
        await job_reaches(core, second.id, JobStatus.COMPLETED, JobStatus.FAILED)
        assert [core.jobs.get(first.id).error, core.jobs.get(second.id).error] == [None, None]
        assert transport.refused == []
        # Webhook URLs for providers on the internet still name the public URL.
        kie_job = core.jobs.get(first.id).model_copy(update={"provider": "kie"})
        assert core.pipeline.callback_url(kie_job).startswith("https://abc-123.tunnel.example/api/webhooks/kie/")
    finally:
        await core.aclose()


def test_node_and_job_rows_carry_their_results_thumbhash_in_snapshots_and_changes(core: Core, node_id: int) -> None:
    """So every tab paints a placeholder of the right shape in the frame the row arrives."""
    project_id = core.access.node(core.accounts.local_user().id, node_id)
    seq = core.canvas.snapshot(project_id).seq
    url = core.media.save(render_text_to_image("a wide harbour", "16:9"))
    job = core.jobs.create(node_id)
    core.jobs.mark_submitted(job.id, TaskRef("t"))
    core.jobs.complete(job.id, url)
    info = core.media.info(url)
    assert info is not None and (info.width, info.height) == (512, 288) and info.thumbhash
    (changed,) = core.canvas.changes(project_id, seq).nodes
    (shown,) = core.canvas.snapshot(project_id).nodes
    for row in (changed, shown):
        assert (row.image_url, row.image_width, row.image_height, row.image_hash) == (url, 512, 288, info.thumbhash)
    # The history strip's too: a snapshot has each entry's; a tab extending its own takes the
    # current result's (`latest_result` names only a newest result that is not the current one).
    assert (changed.latest_result, changed.latest_result_hash) == ("", "")
    assert [(e.url, e.thumbhash) for e in shown.history] == [(url, info.thumbhash)]
    # The queue row too, for its thumbnail's placeholder.
    (changed_job,) = core.canvas.changes(project_id, seq).jobs
    (shown_job,) = core.canvas.snapshot(project_id).jobs
    for job_row in (changed_job, shown_job):
        assert (job_row.image_url, job_row.image_hash) == (url, info.thumbhash)


def test_a_node_with_two_new_results_between_two_reads_comes_with_its_history(core: Core, node_id: int) -> None:
    """A change row names only the node's newest results, and a tab puts them on top of the history
    it holds; when two completions of one node fall between a tab's reads, the earlier result would
    never reach it (a batch of 3 showed 2 in a loaded tab). Such a row carries the history itself."""
    project_id = core.access.node(core.accounts.local_user().id, node_id)
    seq = core.canvas.snapshot(project_id).seq
    jobs = [core.jobs.create(node_id) for _ in range(3)]
    for i, job in enumerate(jobs):
        core.jobs.complete(job.id, f"/media/{i}.png")
    (changed,) = core.canvas.changes(project_id, seq).nodes
    assert sorted(e.url for e in changed.history) == ["/media/0.png", "/media/1.png", "/media/2.png"]
    # One change since the last read: the row names its result and the tab extends its own.
    seq = core.canvas.snapshot(project_id).seq
    core.jobs.complete(core.jobs.create(node_id).id, "/media/3.png")
    (changed,) = core.canvas.changes(project_id, seq).nodes
    assert changed.history == []


def test_a_running_callback_before_the_submission_is_written_keeps_the_task(core: Core, node_id: int) -> None:
    """A fast provider said `running` before the worker wrote the submit's answer: the submission
    was dropped, the job had no task to poll and the worker cancelled the task (1 job in 230
    stayed `running` for good in a CI run). Now the job stays running with its task."""
    job = core.jobs.create(node_id)
    assert core.jobs.mark_running(job.id)
    assert core.jobs.mark_submitted(job.id, TaskRef("task-fast"))  # True: the worker does not cancel it
    stored = core.jobs.get(job.id)
    assert (stored.status, stored.provider_task_id) == (JobStatus.RUNNING, "task-fast")
    assert stored.next_poll_at is None or stored.submitted_at is not None
    assert core.jobs.complete(job.id, "/media/fast.png")
    cancelled = core.jobs.create(node_id)
    assert core.jobs.cancel(cancelled.id)
    assert not core.jobs.mark_submitted(cancelled.id, TaskRef("task-late"))  # its worker stops that task
