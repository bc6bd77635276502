"""The database writes the change feed itself, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import timedelta

from core.contract import NodeKind, TaskRef
from core.root import Core
from models.tables import utcnow
from tests.pg.conftest import events, execute


def test_every_visible_change_is_one_event_in_order(any_core: Core) -> None:
    core = any_core
    project = core.canvas.create_project(core.accounts.local_user().id, "Triggers")
    core.canvas.rename_project(project.id, "Renamed")
    node = core.canvas.add_node(project.id, NodeKind.TEXT_TO_IMAGE)
    core.canvas.update_node(node.id, prompt="a fox")
    job = core.jobs.create(node.id)
    core.jobs.record(job.id, "poll.answered", "running")
    core.jobs.mark_submitted(job.id, TaskRef("t1"))
    execute(core.db, "DELETE FROM jobstep WHERE job_id = :j", j=job.id)
    execute(core.db, "DELETE FROM job WHERE id = :j", j=job.id)
    core.canvas.delete_node(node.id)
    p, n, j = str(project.id), str(node.id), job.id
    assert events(core.db, project.id) == [
        (1, "project", p, "upsert"),
        (2, "project", p, "upsert"),
        (3, "node", n, "upsert"),
        (4, "node", n, "upsert"),
        (5, "job", j, "upsert"),
        (6, "job", j, "upsert"),
        (7, "job", j, "upsert"),
        (8, "job", j, "delete"),
        (9, "node", n, "delete"),
    ]
    assert core.canvas.snapshot(project.id).seq == 9


def test_changes_tabs_never_see_write_no_event(any_core: Core) -> None:
    core = any_core
    project = core.canvas.create_project(core.accounts.local_user().id, "Quiet")
    node = core.canvas.add_node(project.id, NodeKind.TEXT_TO_IMAGE)
    core.canvas.update_node(node.id, prompt="a fox")
    job = core.jobs.create(node.id)
    before = events(core.db, project.id)
    now = utcnow()
    core.jobs.schedule_poll(job.id, now + timedelta(seconds=5))
    assert core.jobs.claim(job.id, "worker-a", now, 60)
    core.jobs.release(job.id, "worker-a")
    core.jobs.record(job.id, "feed.delivered", "seq 3 to 2 tabs", announce=False)
    execute(
        core.db,
        "UPDATE job SET poll_attempts = 7, next_poll_at = :t, claimed_by = 'x', lease_until = :t, "
        "steps = steps + 1, updated_at = :t WHERE id = :j",
        t=now,
        j=job.id,
    )
    execute(core.db, "UPDATE project SET last_seq = last_seq WHERE id = :p", p=project.id)
    assert events(core.db, project.id) == before
    execute(core.db, "UPDATE job SET status = 'FAILED', error = 'by hand' WHERE id = :j", j=job.id)
    assert events(core.db, project.id)[len(before) :] == [(len(before) + 1, "job", job.id, "upsert")]


def test_each_project_has_its_own_sequence(any_core: Core) -> None:
    core = any_core
    first, second = (
        core.canvas.create_project(core.accounts.local_user().id, "One"),
        core.canvas.create_project(core.accounts.local_user().id, "Two"),
    )
    for _ in range(3):
        core.canvas.add_node(first.id, NodeKind.TEXT_TO_IMAGE)
    core.canvas.add_node(second.id, NodeKind.TEXT_TO_IMAGE)
    assert [e[0] for e in events(core.db, first.id)] == [1, 2, 3, 4]
    assert [e[0] for e in events(core.db, second.id)] == [1, 2]
