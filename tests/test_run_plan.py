"""Run plans in the database: Run all stale, Generate with stale ancestors, Autorun, failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from sqlmodel import select

from core.contract import JobStatus, NodeKind
from core.errors import InvalidInput
from core.root import Core
from core.settings import Settings
from models.tables import Job, PlanStep
from tests.wait import eventually


@pytest.fixture
async def submitting(core: Core) -> AsyncIterator[None]:
    """The pipeline serves this test's loop, as the app's lifespan makes it serve the app's."""
    core.pipeline.serve(asyncio.get_running_loop())
    yield


def chain(core: Core, project_id: int, *prompts: str) -> list[int]:
    """#1 text to image -> #2 edit using #1 -> #3 edit using #2 ..."""
    first = core.canvas.add_node(project_id, NodeKind.TEXT_TO_IMAGE)
    core.canvas.update_node(first.id, prompt=prompts[0])
    ids = [first.id]
    for prompt in prompts[1:]:
        edit = core.canvas.add_node(project_id, NodeKind.IMAGE_EDIT)
        core.canvas.update_node(edit.id, prompt=prompt)
        core.notebook.add_input_node(edit.id, ids[-1])
        ids.append(edit.id)
    return ids


def labels(core: Core, project_id: int) -> dict[int, str]:
    return {n.id: n.freshness for n in core.canvas.snapshot(project_id).nodes}


def jobs_of(core: Core, node_id: int) -> list[Job]:
    with core.db.session() as session:
        return list(session.exec(select(Job).where(Job.node_id == node_id).order_by(Job.created_at)))


async def settled(core: Core, project_id: int, expected: dict[int, str], timeout_s: float = 30.0) -> None:
    await eventually(
        lambda: labels(core, project_id), lambda got: got == expected, what=f"labels {expected}", timeout_s=timeout_s
    )


def test_a_reference_that_makes_a_cycle_is_refused_and_changes_nothing(core: Core, project_id: int) -> None:
    one, two, three = chain(core, project_id, "a", "b", "c")
    other = core.canvas.add_node(project_id, NodeKind.IMAGE_EDIT)
    core.notebook.add_input_node(other.id, three)
    with pytest.raises(InvalidInput, match="cycle"):
        core.notebook.add_input_node(two, three)
    with pytest.raises(InvalidInput, match="own result"):
        core.notebook.add_input_node(two, two)
    assert {n.id: n.input_nodes for n in core.canvas.snapshot(project_id).nodes}[two] == [one]


async def test_run_all_stale_runs_the_chain_in_order_and_regenerating_marks_it_stale(
    core: Core, project_id: int, submitting: None
) -> None:
    one, two, three = chain(core, project_id, "a lake", "at night", "in snow")
    assert labels(core, project_id) == {one: "Stale: never run", two: "Waiting for #1", three: "Waiting for #2"}
    assert core.plan.run_all_stale(project_id) == 3
    await settled(core, project_id, {one: "", two: "", three: ""})
    first, second, third = (jobs_of(core, n)[0] for n in (one, two, three))
    assert first.finished_at and second.created_at > first.finished_at
    assert second.finished_at and third.created_at > second.finished_at
    assert second.input_images == [first.image_path] and second.input_results == {str(one): first.id}

    again = await core.pipeline.generate(one)
    await eventually(lambda: core.jobs.get(again.id).status, lambda s: s == JobStatus.COMPLETED, what="regenerated")
    assert labels(core, project_id) == {one: "", two: "Stale: #1 has a new result", three: "Stale: #2 is stale"}
    assert core.plan.run_all_stale(project_id) == 2
    await settled(core, project_id, {one: "", two: "", three: ""})
    assert [len(jobs_of(core, n)) for n in (one, two, three)] == [2, 2, 2]


async def test_autorun_reruns_the_nodes_below_a_new_result(core: Core, project_id: int, submitting: None) -> None:
    one, two, three = chain(core, project_id, "a lake", "at night", "in snow")
    core.plan.run_all_stale(project_id)
    await settled(core, project_id, {one: "", two: "", three: ""})
    core.plan.set_autorun(project_id, True)
    await core.pipeline.generate(one)
    runs = [one, two, three]
    await eventually(lambda: [len(jobs_of(core, n)) for n in runs], lambda n: n == [2, 2, 2], what="reruns")
    await settled(core, project_id, {one: "", two: "", three: ""})


async def test_switching_autorun_on_catches_up_below_up_to_date_nodes(
    core: Core, project_id: int, submitting: None
) -> None:
    one, two, three = chain(core, project_id, "a lake", "at night", "in snow")
    idle = core.canvas.add_node(project_id, NodeKind.TEXT_TO_IMAGE)  # never ran, uses nothing: stays
    core.plan.run_all_stale(project_id)
    await settled(core, project_id, {one: "", two: "", three: "", idle.id: "Not run: Write a prompt before generating"})
    again = await core.pipeline.generate(one)
    await eventually(lambda: core.jobs.get(again.id).status, lambda s: s == JobStatus.COMPLETED, what="regenerated")
    assert labels(core, project_id)[two] == "Stale: #1 has a new result"
    core.plan.set_autorun(project_id, True)
    await settled(core, project_id, {one: "", two: "", three: "", idle.id: "Not run: Write a prompt before generating"})
    assert [len(jobs_of(core, n)) for n in (one, two, three, idle.id)] == [2, 2, 2, 0]


async def test_generate_runs_stale_ancestors_first(core: Core, project_id: int, submitting: None) -> None:
    one, two, three = chain(core, project_id, "a lake", "at night", "in snow")
    assert core.plan.run_with_ancestors(three)
    await settled(core, project_id, {one: "", two: "", three: ""})
    assert not core.plan.run_with_ancestors(one)  # nothing above it: Generate runs it at once


async def test_a_failure_blocks_what_is_below_it_with_the_reason(core: Core, project_id: int, submitting: None) -> None:
    one, two, three = chain(core, project_id, "please [fail]", "at night", "in snow")
    core.plan.run_all_stale(project_id)
    await settled(core, project_id, {one: "Stale: never run", two: "Not run: #1 failed", three: "Not run: #1 failed"})
    assert jobs_of(core, two) == [] and jobs_of(core, three) == []
    core.canvas.update_node(one, prompt="a lake")
    core.plan.run_all_stale(project_id)  # tried again: blocked steps wait again
    await settled(core, project_id, {one: "", two: "", three: ""})


async def test_retrying_the_failed_node_lets_the_plan_go_on(core: Core, project_id: int, submitting: None) -> None:
    one, two, three = chain(core, project_id, "please [fail]", "at night", "in snow")
    core.plan.run_all_stale(project_id)
    await settled(core, project_id, {one: "Stale: never run", two: "Not run: #1 failed", three: "Not run: #1 failed"})
    core.canvas.update_node(one, prompt="a lake")
    await core.pipeline.retry_job(jobs_of(core, one)[0].id)
    await settled(core, project_id, {one: "", two: "", three: ""})
    assert [len(jobs_of(core, n)) for n in (one, two, three)] == [2, 1, 1]


def test_a_node_that_cannot_run_says_why_and_blocks_below(core: Core, project_id: int) -> None:
    one, two = chain(core, project_id, "", "at night")
    core.plan.run_all_stale(project_id)
    assert labels(core, project_id) == {
        one: "Not run: Write a prompt before generating",
        two: "Not run: #1 did not run",
    }


def test_a_deleted_input_leaves_a_broken_input(core: Core, project_id: int) -> None:
    one, two = chain(core, project_id, "a lake", "at night")
    core.canvas.delete_node(one)
    assert labels(core, project_id) == {two: "Stale: input #1 was deleted"}
    with pytest.raises(InvalidInput, match="#1 was deleted"):
        core.jobs.create(two)


def test_use_this_result_makes_the_users_stale(core: Core, project_id: int) -> None:
    one, two = chain(core, project_id, "a lake", "at night")
    first = core.jobs.create(one)
    core.jobs.complete(first.id, "/media/first.png")
    second = core.jobs.create(one)
    core.jobs.complete(second.id, "/media/second.png")
    edit = core.jobs.create(two)
    core.jobs.complete(edit.id, "/media/edit.png")
    assert labels(core, project_id) == {one: "", two: ""}
    core.notebook.use_result(one, "/media/first.png")
    assert labels(core, project_id)[two] == "Stale: #1 has a new result"
    with pytest.raises(InvalidInput):
        core.notebook.use_result(one, "/media/someone-elses.png")


def test_move_up_and_down_persist_the_order(core: Core, project_id: int) -> None:
    a, b, c = (core.canvas.add_node(project_id, NodeKind.TEXT_TO_IMAGE).id for _ in range(3))
    core.notebook.move(c, -1)
    assert [n.id for n in core.canvas.snapshot(project_id).nodes] == [a, c, b]
    core.notebook.move(a, -1)  # already first: nothing moves
    core.notebook.move(a, 1)
    assert [n.id for n in core.canvas.snapshot(project_id).nodes] == [c, a, b]
    core.notebook.move_to(c, b)  # dropped on the last card: takes its place
    assert [n.id for n in core.canvas.snapshot(project_id).nodes] == [a, b, c]
    core.notebook.move_to(c, a)
    assert [n.id for n in core.canvas.snapshot(project_id).nodes] == [c, a, b]


async def test_a_plan_survives_a_restart(
    core: Core, project_id: int, settings: Settings, make_core: Callable[[Settings], Core]
) -> None:
    one, two, three = chain(core, project_id, "a lake", "at night", "in snow")
    core.plan.run_all_stale(project_id)
    [first] = jobs_of(core, one)
    restarted = make_core(settings)
    restarted.jobs.complete(first.id, "/media/first.png")  # its result arrives after the restart
    [second] = jobs_of(restarted, two)
    assert second.input_images == ["/media/first.png"]
    assert labels(restarted, project_id)[three] == "Waiting for #2"
    with restarted.db.session() as session:
        assert {s.node_id: s.status for s in session.exec(select(PlanStep))} == {two: "running", three: "waiting"}
