"""The room bridge's side of sharing and presence, over recorded socket.io connections."""

from __future__ import annotations

from types import SimpleNamespace

from core.contract import NodeKind
from core.people.accounts import UserView
from core.realtime.presence import MemoryPresence
from core.root import Core
from rxapp.realtime.bridge import ACCESS_EVENT, MEMBERS_EVENT, PRESENCE_EVENT, PROJECTS_EVENT, RoomBridge
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


async def test_invitations_reach_every_member_list_but_their_links_reach_no_tab(core: Core) -> None:
    olga, _ = core.accounts.sign_up("olga@example.com", "long enough")
    ed, _ = core.accounts.sign_up("ed@example.com", "long enough")
    project = core.canvas.create_project(olga.id, "Team")
    core.sharing.add(project.id, "ed@example.com", "viewer")
    bridge, sockets = await _bridge(core)
    olga_tab, ed_tab = await sockets.connect(), await sockets.connect()
    await bridge.enter(olga_tab, project.id, olga)
    listed = _events(sockets, olga_tab, MEMBERS_EVENT)[-1]["members"]
    assert [(m["email"], m["user_id"], m["invite_id"] > 0) for m in listed] == [
        ("olga@example.com", olga.id, False),
        ("ed@example.com", 0, True),  # an account, with access already: still listed like any email
    ]
    assert await bridge.enter(ed_tab, project.id, ed) is not None  # Ed shows up: the invitation is done
    joining = await sockets.connect()
    await bridge.join(joining, project.id)  # a tab whose `enter` has not finished yet
    core.sharing.add(project.id, "nobody@example.com", "editor")
    await bridge.members_changed(project.id, 0)
    assert _events(sockets, joining, ACCESS_EVENT) == []  # an invitation ends nobody's access
    assert [m["email"] for m in _events(sockets, joining, MEMBERS_EVENT)[-1]["members"]][-1] == "nobody@example.com"
    for tab in (olga_tab, ed_tab):
        listed = _events(sockets, tab, MEMBERS_EVENT)[-1]["members"]
        assert [(m["email"], m["role"], m["invite_id"] > 0) for m in listed] == [
            ("olga@example.com", "owner", False),
            ("ed@example.com", "viewer", False),
            ("nobody@example.com", "editor", True),
        ]
    tokens = [path.removeprefix("/invite/") for path in core.sharing.invite_links(project.id).values()]
    frames = repr([sockets.received(tab) for tab in (olga_tab, ed_tab)])
    assert tokens and "/invite/" not in frames and not any(token in frames for token in tokens)


async def test_a_tab_whose_socket_went_silent_leaves_presence_within_the_timeout_and_comes_back(core: Core) -> None:
    clock = Clock()
    core.presence = MemoryPresence(5.0, clock)
    ann, _ = core.accounts.sign_up("ann@example.com", "long enough")
    project = core.canvas.create_project(ann.id, "Lid shut")
    sockets = Sockets()
    bridge = RoomBridge(core, clock)
    bridge.attach(SimpleNamespace(event_namespace=sockets.namespace))  # type: ignore[arg-type]
    awake, asleep = await sockets.connect(), await sockets.connect()
    for sid in (awake, asleep):
        await bridge.enter(sid, project.id, ann)

    def tabs() -> int:
        return int(_events(sockets, awake, PRESENCE_EVENT)[-1]["people"][0]["tabs"])

    assert tabs() == 2
    # The server pinged the sleeping tab's socket (Engine.IO stamps `last_ping`) and no answer came.
    pinged = SimpleNamespace(last_ping=clock())
    sockets.server.eio.sockets[sockets.eio_sid(asleep)] = pinged
    clock.now += 2.4
    await bridge.presence_round(project.id)
    assert tabs() == 2  # a slow answer is not silence yet
    clock.now += 0.2  # past half of PRESENCE_TIMEOUT_S: with the ping interval, well within it
    await bridge.presence_round(project.id)
    assert tabs() == 1
    pinged.last_ping = None  # it answered: the lid opened
    await bridge.presence_round(project.id)
    assert tabs() == 2
