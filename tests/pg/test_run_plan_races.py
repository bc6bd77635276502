"""Two tabs press Run all stale at once (and a job ends meanwhile): each node runs once.

Threads stand in for tabs on different workers; the database alone decides who starts a step.
"""

from __future__ import annotations

import threading
from collections import Counter

from sqlmodel import select

from core.contract import NodeKind
from core.root import Core
from models.tables import Job, utcnow

TABS = 4


def started_jobs(core: Core) -> Counter[int | None]:
    with core.db.session() as session:
        return Counter(session.exec(select(Job.node_id)))


def at_once(*calls) -> None:  # type: ignore[no-untyped-def]
    barrier = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def run(call) -> None:  # type: ignore[no-untyped-def]
        barrier.wait()
        try:
            call()
        except BaseException as exc:  # surfaced below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def test_concurrent_run_all_stale_runs_each_node_once(any_core: Core) -> None:
    core = any_core
    project = core.canvas.create_project(core.accounts.local_user().id, "Races")
    first = core.canvas.add_node(project.id, NodeKind.TEXT_TO_IMAGE)
    core.canvas.update_node(first.id, prompt="a lake")
    second = core.canvas.add_node(project.id, NodeKind.IMAGE_EDIT)
    core.canvas.update_node(second.id, prompt="at night")
    core.notebook.add_input_node(second.id, first.id)

    at_once(*[lambda: core.plan.run_all_stale(project.id)] * TABS)
    assert started_jobs(core) == {first.id: 1}

    [job] = [j for j in core.jobs.queued_ids(utcnow())]
    # The first node's result lands while more tabs press Run all stale.
    at_once(
        lambda: core.jobs.complete(job, "/media/lake.png"),
        *[lambda: core.plan.run_all_stale(project.id)] * TABS,
    )
    assert started_jobs(core) == {first.id: 1, second.id: 1}
