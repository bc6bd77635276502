"""The project's rows in the browser: client-side lists the room bridge's messages update.

Reflex replaces a state var whole on every delta, so rows merged one at a time live
in `ClientStateVar`s instead, written by `room_store.js`: a snapshot replaces them
(on open, reconnect and resync), a change merges its rows by id and version. Every
component renders from these lists; `room_store()` goes once at the top of the page.
"""

from __future__ import annotations

import json
from pathlib import Path

import reflex as rx
from reflex.event import EventChain, no_args_event_spec
from reflex.experimental.client_state import ClientStateVar
from reflex_base.utils.imports import ImportVar

from core.canvas import HISTORY_LIMIT, QUEUE_LIMIT
from models.views import JobView, NodeView
from rxapp.bridge import CHANGE_EVENT, SNAPSHOT_EVENT
from rxapp.states.room import ProjectRoom

room_project = ClientStateVar.create("roomProject", default={"id": 0, "name": ""})
room_jobs = ClientStateVar.create("roomJobs", default=[])
room_nodes = ClientStateVar.create("roomNodes", default=[])

#: What components read.
project_name = room_project.value.to(dict[str, str])["name"].to(str)
jobs = room_jobs.value.to(list[JobView])
nodes = room_nodes.value.to(list[NodeView])

_JS = (Path(__file__).with_suffix(".js")).read_text()
_RESYNC = rx.Var.create(EventChain.create(value=ProjectRoom.resync, args_spec=no_args_event_spec, key="resync"))


def _slot(var: ClientStateVar) -> dict[str, str]:
    """Where ClientStateVar keeps a value and its setter in Reflex's global `refs`."""
    return {"value": f"_client_state_{var._getter_name}", "setter": f"_client_state_{var._setter_name}"}


def confirmed(client_request_id: rx.Var) -> rx.Var[bool]:
    """Whether the real row of an optimistic one arrived."""
    return rx.Var(
        f"({jobs}).some((job) => job.client_request_id === {client_request_id})",
        _var_data=rx.vars.VarData.merge(jobs._get_all_var_data(), client_request_id._get_all_var_data()),
    ).to(bool)


def steps_of(job_id: rx.Var) -> rx.Var[str]:
    """The expanded job's timeline length, as text ("" when it is not in the queue)."""
    return rx.Var(
        f"String(({jobs}).find((job) => job.id === {job_id})?.steps ?? '')",
        _var_data=rx.vars.VarData.merge(jobs._get_all_var_data(), job_id._get_all_var_data()),
    ).to(str)


def finished_images() -> rx.Var[list[str]]:
    """Every node's current result, offered as an input to edit nodes."""
    return rx.Var(
        f"({nodes}).filter((node) => node.image_url).map((node) => node.image_url)",
        _var_data=nodes._get_all_var_data(),
    ).to(list[str])


class RoomStore(rx.Fragment):
    """Wraps the whole app (an app wrap, see rxapp.py) and renders only its children.

    Its module code installs the store and the socket listener. It must live in the app's
    root module: a page loaded directly connects its socket, and gets its snapshot, before
    React Router has loaded the page's own module.
    """

    def add_imports(self) -> dict[str, list[ImportVar]]:
        imports: dict[str, list[ImportVar]] = {
            "socket.io-client": [ImportVar(tag="Socket", install=False)],
            "$/utils/state": [ImportVar(tag="refs")],
        }
        var_data = _RESYNC._get_all_var_data()
        for library, tags in var_data.imports if var_data else ():
            imports.setdefault(library, []).extend(tags)
        return imports

    def add_custom_code(self) -> list[str]:
        config = {
            "project": _slot(room_project),
            "jobs": _slot(room_jobs),
            "nodes": _slot(room_nodes),
            "snapshotEvent": SNAPSHOT_EVENT,
            "changeEvent": CHANGE_EVENT,
            "queueLimit": QUEUE_LIMIT,
            "historyLimit": HISTORY_LIMIT,
        }
        literal = json.dumps(config)[:-1] + ', "resync": ' + str(_RESYNC) + "}"
        return [_JS.replace("__ROOM_CONFIG__", literal)]


def room_store() -> rx.Component:
    """The lists' hooks, once at the top of the page that renders them."""
    return rx.fragment(room_project, room_jobs, room_nodes)
