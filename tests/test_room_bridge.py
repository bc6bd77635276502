"""The room bridge over a real socket.io server whose sockets are recorded instead of written.

python-socketio's own manager keeps the rooms and encodes the packets; only the last step,
writing a packet to a connection, is replaced by a recorder.
"""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace
from typing import Any

import socketio
from sqlmodel import delete

from core.contract import NodeKind, TaskRef
from core.root import Core
from models.tables import ChangeEvent
from providers.local_render import render_text_to_image
from rxapp.realtime.bridge import CHANGE_EVENT, FILLED_DEFAULTS, SNAPSHOT_EVENT, RoomBridge, change_message

NAMESPACE = "/_event"


class Sockets:
    """A socket.io server with fake connections: what each one was sent, decoded."""

    def __init__(self) -> None:
        self.server = socketio.AsyncServer(async_mode="asgi")
        self.namespace = socketio.AsyncNamespace(NAMESPACE)
        self.server.register_namespace(self.namespace)
        self.packets: list[tuple[str, Any]] = []  # (eio sid, engine.io packet)
        self._eio: dict[str, str] = {}

        async def record(eio_sid: str, packet: Any) -> None:
            self.packets.append((eio_sid, packet))

        self.server._send_eio_packet = record  # type: ignore[method-assign]

    async def connect(self) -> str:
        eio_sid = f"eio-{len(self._eio)}"
        sid = await self.server.manager.connect(eio_sid, NAMESPACE)
        self._eio[sid] = eio_sid
        return sid

    def eio_sid(self, sid: str) -> str:
        return self._eio[sid]

    def received(self, sid: str) -> list[tuple[str, dict]]:
        """(event, message) sent to one socket, in order."""
        out = []
        for eio_sid, packet in self.packets:
            if eio_sid == self._eio[sid]:
                event, message = json.loads(packet.data[packet.data.index("[") :])
                out.append((event, message))
        return out


async def _bridge(core: Core) -> tuple[RoomBridge, Sockets]:
    sockets = Sockets()
    bridge = RoomBridge(core)
    bridge.attach(SimpleNamespace(event_namespace=sockets.namespace))  # type: ignore[arg-type]
    return bridge, sockets


async def test_a_change_is_encoded_once_and_sent_to_every_tab_of_its_project_only(core: Core) -> None:
    owner = core.accounts.local_user()
    project = core.canvas.create_project(owner.id, "watched")
    other = core.canvas.create_project(owner.id, "elsewhere")
    node = core.canvas.add_node(project.id, NodeKind.TEXT_TO_IMAGE)
    bridge, sockets = await _bridge(core)
    tabs = [await sockets.connect() for _ in range(50)]
    for sid in tabs:
        await bridge.join(sid, project.id)
    stranger = await sockets.connect()
    await bridge.join(stranger, other.id)
    sockets.packets.clear()

    core.canvas.update_node(node.id, prompt="a lighthouse")
    await bridge.push(project.id)

    assert len(sockets.packets) == 50
    assert len({id(packet) for _, packet in sockets.packets}) == 1  # one encoded frame, queued 50 times
    assert sockets.received(stranger) == []
    ((event, message),) = sockets.received(tabs[0])
    assert event == CHANGE_EVENT
    assert [n["prompt"] for n in message["nodes"]] == ["a lighthouse"]
    assert "history" not in message["nodes"][0] and "jobs" not in message
    assert len(json.dumps(message)) < 1024


async def test_a_joining_tab_alone_gets_a_snapshot_and_the_room_continues_where_it_was(core: Core) -> None:
    owner = core.accounts.local_user()
    project = core.canvas.create_project(owner.id, "joined")
    bridge, sockets = await _bridge(core)
    first = await sockets.connect()
    await bridge.join(first, project.id)
    core.canvas.add_node(project.id, NodeKind.TEXT_TO_IMAGE)
    await bridge.push(project.id)
    sockets.packets.clear()

    second = await sockets.connect()
    snapshot = await bridge.join(second, project.id)
    assert sockets.received(first) == []
    ((event, message),) = sockets.received(second)
    assert event == SNAPSHOT_EVENT and message["seq"] == snapshot.seq and len(message["nodes"]) == 1

    core.canvas.rename_project(project.id, "renamed")
    await bridge.push(project.id)
    for sid in (first, second):
        event, message = sockets.received(sid)[-1]
        assert event == CHANGE_EVENT and message["project"]["name"] == "renamed"
        assert message["base"] == snapshot.seq < message["seq"]


async def test_a_hole_in_the_change_events_sends_the_room_a_snapshot(core: Core) -> None:
    owner = core.accounts.local_user()
    project = core.canvas.create_project(owner.id, "holed")
    bridge, sockets = await _bridge(core)
    tab = await sockets.connect()
    joined = await bridge.join(tab, project.id)
    core.canvas.add_node(project.id, NodeKind.TEXT_TO_IMAGE)
    core.canvas.add_node(project.id, NodeKind.TEXT_TO_IMAGE)
    with core.db.session() as session:  # lose the first of the two events
        session.exec(delete(ChangeEvent).where(ChangeEvent.project_id == project.id, ChangeEvent.seq == joined.seq + 1))
    sockets.packets.clear()

    await bridge.push(project.id)

    ((event, message),) = sockets.received(tab)
    assert event == SNAPSHOT_EVENT and len(message["nodes"]) == 2


async def test_opening_another_project_leaves_the_first_ones_room(core: Core) -> None:
    owner = core.accounts.local_user()
    first, second = (core.canvas.create_project(owner.id, name) for name in ("first", "second"))
    bridge, sockets = await _bridge(core)
    tab = await sockets.connect()
    await bridge.join(tab, first.id)
    await bridge.join(tab, second.id)
    assert bridge.tabs(first.id) == 0 and bridge.tabs(second.id) == 1
    sockets.packets.clear()
    core.canvas.rename_project(first.id, "unseen")
    await bridge.push(first.id)
    assert sockets.received(tab) == []


async def test_a_read_only_event_sends_nothing_to_any_tab(core: Core) -> None:
    """What a read-only event does (list projects, check access, read a timeline) writes no change,
    and the bridge sends only changes: a notice that finds none (a duplicate NOTIFY, another
    worker's echo) costs the other tabs nothing. A tab's own answer goes to that tab alone (Reflex)."""
    owner = core.accounts.local_user()
    project = core.canvas.create_project(owner.id, "read")
    node = core.canvas.add_node(project.id, NodeKind.TEXT_TO_IMAGE)
    core.canvas.update_node(node.id, prompt="a lighthouse")
    job = core.jobs.create(node.id)
    bridge, sockets = await _bridge(core)
    tabs = [await sockets.connect() for _ in range(3)]
    for sid in tabs:
        await bridge.join(sid, project.id)
    await bridge.push(project.id)
    sockets.packets.clear()

    core.canvas.list_projects(owner.id)
    core.access.project(owner.id, project.id)
    core.jobs.timeline(job.id)
    await bridge.push(project.id)

    assert sockets.packets == []
    core.canvas.rename_project(project.id, "changed")  # and the recorder does record a real change
    await bridge.push(project.id)
    assert len(sockets.packets) == 3


def test_a_change_row_leaves_out_its_fields_at_their_default_and_the_tab_gets_them_back(
    core: Core, node_id: int
) -> None:
    """Rows gained fields this round (sizes, ThumbHashes, seeds, retries): sent whole, a completion's
    message grew from ~790 to ~1,140 bytes a tab. Fields at their default stay home."""
    project_id = core.access.node(core.accounts.local_user().id, node_id)
    job = core.jobs.create(node_id)
    core.jobs.mark_submitted(job.id, TaskRef("t"))
    seq = core.canvas.snapshot(project_id).seq  # the completion's own change, as a push sends it
    core.jobs.complete(job.id, core.media.save(render_text_to_image("a quiet bay", "1:1")))
    changes = core.canvas.changes(project_id, seq)
    message = change_message(project_id, seq, changes)
    assert len(json.dumps(message)) < 900, json.dumps(message)
    (row,) = message["jobs"]
    assert "error" not in row and "retry_of" not in row and row["status"] == "completed"
    # Filled back in as the page does (room_store.js), each row is the view it was made from.
    assert {**FILLED_DEFAULTS["jobs"], **row} == dataclasses.asdict(changes.jobs[0])
    (node,) = message["nodes"]
    assert "history" not in node  # the tab extends its own
    assert {**FILLED_DEFAULTS["nodes"], **node} == {
        k: v for k, v in dataclasses.asdict(changes.nodes[0]).items() if k != "history"
    }
