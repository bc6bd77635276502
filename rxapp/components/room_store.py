"""The project's rows in the browser: client-side lists the room bridge's messages update.

Reflex replaces a state var whole on every delta, so rows merged one at a time live
in `ClientStateVar`s instead, written by `room_store.js`: a snapshot replaces them
(on open, reconnect and resync), a change merges its rows by id and version. Every
component renders from these lists; `room_store()` goes once at the top of the page.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import reflex as rx
from reflex.event import EventChain, no_args_event_spec
from reflex.experimental.client_state import ClientStateVar
from reflex.vars import ObjectVar
from reflex_base.utils.imports import ImportVar

from core.canvas import HISTORY_LIMIT, QUEUE_LIMIT
from models.views import JobView, NodeView
from rxapp.bridge import CHANGE_EVENT, SNAPSHOT_EVENT
from rxapp.states.room import ProjectRoom

room_project = ClientStateVar.create("roomProject", default={"id": 0, "name": "", "autorun": False})
room_jobs = ClientStateVar.create("roomJobs", default=[])
room_nodes = ClientStateVar.create("roomNodes", default=[])

#: What components read.
project_name = room_project.value.to(dict[str, str])["name"].to(str)
project_autorun = room_project.value.to(dict[str, bool])["autorun"].to(bool)
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


#: How many words of a node's prompt name it in pickers and dialogs.
NAME_WORDS = 6


def node_name(node: rx.Var) -> str:
    """JS for a node's name, `#<id> · <first words of the prompt>`, from a row expression."""
    words = f"({node}).prompt.trim().split(/\\s+/).slice(0, {NAME_WORDS}).join(' ')"
    return f"('#' + ({node}).id + (({node}).prompt.trim() ? ' · ' + {words} : ''))"


def input_choices(node_id: rx.Var) -> rx.Var[list[dict[str, str]]]:
    """The other nodes an edit node can use, as `{value, label, image}` for the picker."""
    return rx.Var(
        f"({nodes}).filter((n) => n.id !== {node_id})"
        f".map((n) => ({{value: String(n.id), label: {node_name(rx.Var('n'))}, image: n.image_url}}))",
        _var_data=rx.vars.VarData.merge(nodes._get_all_var_data(), node_id._get_all_var_data()),
    ).to(list[dict[str, str]])


def node_by_id(node_id: rx.Var) -> ObjectVar[dict[str, str]]:
    """A node's row by id (`{}` when it was deleted), for the inputs that refer to it."""
    row: rx.Var = rx.Var(
        f"(({nodes}).find((n) => n.id === {node_id}) ?? {{}})",
        _var_data=rx.vars.VarData.merge(nodes._get_all_var_data(), node_id._get_all_var_data()),
    )
    return cast(ObjectVar[dict[str, str]], row.to(dict[str, str]))


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
