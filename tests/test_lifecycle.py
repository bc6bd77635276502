"""The job lifecycle and the change feed, without a browser."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import select

from core.contract import JobStatus, NodeKind, TaskRef
from core.errors import InvalidInput
from core.media import MEDIA_PREFIX
from core.root import Core
from core.settings import Settings
from models.tables import ChangeEvent
from providers.local_render import render_text_to_image


async def wait_for_status(core: Core, job_id: str, *statuses: JobStatus, timeout: float = 5) -> JobStatus:
    async with asyncio.timeout(timeout):
        while (status := core.jobs.get(job_id).status) not in statuses:
            await asyncio.sleep(0.01)
    return status


async def test_generate_completes_through_webhook_and_stores_image(core: Core, node_id: int) -> None:
    view = await core.pipeline.generate(node_id, "req-1")
    assert view.status == "queued"
    await wait_for_status(core, view.id, JobStatus.COMPLETED)
    job = core.jobs.get(view.id)
    assert job.provider_task_id and job.provider_task_id.startswith("local-")
    assert job.image_path and job.image_path.startswith("/media/")
    stored = core.media.file_for(job.image_path.removeprefix(MEDIA_PREFIX))
    assert stored is not None and stored.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    node = next(n for n in core.canvas.snapshot(job.project_id).nodes if n.id == node_id)
    assert node.image_url == job.image_path
    assert node.history == [job.image_path]


async def test_failing_prompt_fails_job_and_node(core: Core, node_id: int) -> None:
    core.canvas.update_node(node_id, prompt="please [fail] now")
    view = await core.pipeline.generate(node_id)
    await wait_for_status(core, view.id, JobStatus.FAILED)
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
    view = await core.pipeline.generate(node_id)
    await wait_for_status(core, view.id, JobStatus.SUBMITTED, JobStatus.RUNNING)
    assert await core.pipeline.cancel(view.id)
    await asyncio.sleep(0.2)
    job = core.jobs.get(view.id)
    assert job.status == JobStatus.CANCELLED
    assert job.image_path is None


async def test_retry_creates_a_new_job_for_the_node(core: Core, node_id: int) -> None:
    core.canvas.update_node(node_id, prompt="[fail]")
    failed = await core.pipeline.generate(node_id)
    await wait_for_status(core, failed.id, JobStatus.FAILED)
    core.canvas.update_node(node_id, prompt="works now")
    retried = await core.pipeline.retry_job(failed.id)
    assert retried.id != failed.id
    assert retried.retry_of == failed.id  # the queue shows "retry of" it
    await wait_for_status(core, retried.id, JobStatus.COMPLETED)
    node = next(n for n in core.canvas.snapshot(retried_project(core, retried.id)).nodes if n.id == node_id)
    assert node.error == ""


def retried_project(core: Core, job_id: str) -> int:
    return core.jobs.get(job_id).project_id


async def test_edit_node_transforms_an_input_image(core: Core, project_id: int, node_id: int) -> None:
    source = await core.pipeline.generate(node_id)
    await wait_for_status(core, source.id, JobStatus.COMPLETED)
    source_path = core.jobs.get(source.id).image_path
    edit = core.canvas.add_node(project_id, NodeKind.IMAGE_EDIT)
    core.canvas.update_node(edit.id, prompt="make it night")
    core.canvas.change_inputs(edit.id, add=[source_path])
    view = await core.pipeline.generate(edit.id)
    await wait_for_status(core, view.id, JobStatus.COMPLETED)
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


def test_projects_create_rename_and_persist(core: Core, settings) -> None:
    project = core.canvas.create_project(core.accounts.local_user().id, "  Holiday   cards ")
    assert project.name == "Holiday cards"
    core.canvas.rename_project(project.id, "<script>alert(1)</script>")
    reopened = Core.build(settings)
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
    assert sorted(node.history) == ["/media/new.png", "/media/old.png"]
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
    assert sorted(p.name for p in core.media.root.iterdir()) == sorted(names)


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
