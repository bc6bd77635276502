"""Progress rows through the room bridge: pushed to the project's tabs, and in a late tab's snapshot."""

from __future__ import annotations

from core.contract import JobStatus, NodeKind, TaskProgress
from core.root import Core
from rxapp.realtime.bridge import PROGRESS_EVENT, SNAPSHOT_EVENT
from tests.test_room_bridge import _bridge


async def test_progress_reaches_the_projects_tabs_and_a_tab_opening_mid_job_gets_it(core: Core) -> None:
    owner = core.accounts.local_user()
    project = core.canvas.create_project(owner.id, "watched")
    other = core.canvas.create_project(owner.id, "elsewhere")
    node = core.canvas.add_node(project.id, NodeKind.TEXT_TO_IMAGE)
    core.canvas.update_node(node.id, prompt="a kite")
    job = core.jobs.create(node.id)
    bridge, sockets = await _bridge(core)
    early, stranger = await sockets.connect(), await sockets.connect()
    await bridge.join(early, project.id)
    await bridge.join(stranger, other.id)

    core.progress.report(job.id, JobStatus.SUBMITTED, TaskProgress(queue_position=4))
    await core.progress.drain()
    (event, message) = sockets.received(early)[-1]
    assert event == PROGRESS_EVENT and message["project_id"] == project.id
    assert [(r["id"], r["node_id"], r["phase"], r["position"]) for r in message["rows"]] == [
        (job.id, node.id, "waiting", 4)
    ]
    assert all(event != PROGRESS_EVENT for event, _ in sockets.received(stranger))

    late = await sockets.connect()
    await bridge.join(late, project.id)
    (event, snapshot) = sockets.received(late)[-1]
    assert event == SNAPSHOT_EVENT and snapshot["progress"] == message["rows"]

    core.jobs.cancel(job.id)
    await bridge.push(project.id)  # the end, from the change feed, drops the row
    assert core.progress.rows(project.id) == []
