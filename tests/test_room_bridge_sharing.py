"""The room bridge's side of sharing and presence, over recorded socket.io connections."""

from __future__ import annotations

from core.accounts import UserView
from core.contract import NodeKind
from core.presence import MemoryPresence
from core.root import Core
from rxapp.bridge import ACCESS_EVENT, MEMBERS_EVENT, PRESENCE_EVENT, PROJECTS_EVENT
from tests.test_presence import Clock
from tests.test_room_bridge import Sockets, _bridge


def _events(sockets: Sockets, sid: str, name: str) -> list[dict]:
    return [message for event, message in sockets.received(sid) if event == name]


async def test_a_removed_member_leaves_the_room_and_hears_nothing_more(core: Core) -> None:
    olga, _ = core.accounts.sign_up("olga@example.com", "long enough")
    ed, _ = core.accounts.sign_up("ed@example.com", "long enough")
    project = core.canvas.create_project(olga.id, "Team")
    eds_own = core.canvas.create_project(ed.id, "Ed's")
    core.sharing.add(project.id, "ed@example.com", "editor")
    bridge, sockets = await _bridge(core)
    olga_tab, ed_tab, ed_elsewhere = [await sockets.connect() for _ in range(3)]
    await bridge.enter(olga_tab, project.id, olga)
    await bridge.enter(ed_tab, project.id, ed)
    await bridge.enter(ed_elsewhere, eds_own.id, ed)
    outsider = await sockets.connect()
    assert await bridge.enter(outsider, project.id, UserView(999, "eve@example.com")) is None
    assert sockets.received(outsider) == []  # a non-member's socket gets nothing of the project
    assert _events(sockets, ed_tab, ACCESS_EVENT) == [{"project_id": project.id, "role": "editor"}]
    sockets.packets.clear()

    core.sharing.set_role(project.id, ed.id, "viewer")
    await bridge.members_changed(project.id, ed.id)
    assert _events(sockets, ed_tab, ACCESS_EVENT) == [{"project_id": project.id, "role": "viewer"}]
    assert _events(sockets, ed_elsewhere, PROJECTS_EVENT) == [{"project_id": project.id}]  # its menu rereads
    assert _events(sockets, olga_tab, ACCESS_EVENT) == []  # Olga's role did not change
    sockets.packets.clear()

    core.sharing.remove(project.id, ed.id)
    await bridge.members_changed(project.id, ed.id)
    assert _events(sockets, ed_tab, ACCESS_EVENT) == [{"project_id": project.id, "role": ""}]
    listed = _events(sockets, olga_tab, MEMBERS_EVENT)[-1]["members"]
    assert [m["email"] for m in listed] == ["olga@example.com"]
    assert [p["email"] for p in _events(sockets, olga_tab, PRESENCE_EVENT)[-1]["people"]] == ["olga@example.com"]
    sockets.packets.clear()

    core.canvas.add_node(project.id, NodeKind.TEXT_TO_IMAGE)
    await bridge.push(project.id)
    assert sockets.received(ed_tab) == []  # out of the room: not one more frame of the project
    assert [event for event, _ in sockets.received(olga_tab)] == ["canvas.change"]


async def test_presence_follows_tabs_and_a_dead_workers_tabs_expire(core: Core) -> None:
    clock = Clock()
    core.presence = MemoryPresence(5.0, clock)  # one store, two workers (bridges) writing to it
    ann, _ = core.accounts.sign_up("ann@example.com", "long enough")
    bo, _ = core.accounts.sign_up("bo@example.com", "long enough")
    project = core.canvas.create_project(ann.id, "Watched")
    core.sharing.add(project.id, "bo@example.com", "viewer")
    worker_a, sockets_a = await _bridge(core)
    worker_b, sockets_b = await _bridge(core)
    ann_tab, ann_second = await sockets_a.connect(), await sockets_a.connect()
    bo_tab = await sockets_b.connect()
    await worker_a.enter(ann_tab, project.id, ann)
    await worker_a.enter(ann_second, project.id, ann)
    await worker_b.enter(bo_tab, project.id, bo)
    await worker_a.presence_round(project.id)
    latest = _events(sockets_a, ann_tab, PRESENCE_EVENT)[-1]["people"]
    assert latest == [
        {"email": "ann@example.com", "tabs": 2, "nodes": []},
        {"email": "bo@example.com", "tabs": 1, "nodes": []},
    ]

    await worker_a.typing(ann_tab, project.id, 7)
    await worker_b.presence_round(project.id)
    assert _events(sockets_b, bo_tab, PRESENCE_EVENT)[-1]["people"][0] == {
        "email": "ann@example.com",
        "tabs": 2,
        "nodes": [7],
    }

    await sockets_a.server.manager.disconnect(ann_second, "/_event")  # a closed tab: gone at the next round
    await worker_a.presence_round(project.id)
    assert _events(sockets_a, ann_tab, PRESENCE_EVENT)[-1]["people"][0]["tabs"] == 1

    clock.now += 3
    await worker_a.presence_round(project.id)  # worker B died: nobody renews Bo's tab
    clock.now += 2.5
    await worker_a.presence_round(project.id)
    assert [p["email"] for p in _events(sockets_a, ann_tab, PRESENCE_EVENT)[-1]["people"]] == ["ann@example.com"]
