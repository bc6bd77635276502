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

from core.contract import JobStatus
from core.media.store import DERIVATIVE_SIDES, copy_suffix
from core.notebook.canvas import HISTORY_LIMIT
from core.people.access import Role
from core.people.sharing import MemberView
from core.realtime.presence import PersonView
from models.views import JobView, NodeView
from rxapp.components.images import CARD_IMAGE_SIZES
from rxapp.realtime.bridge import (
    ACCESS_EVENT,
    CHANGE_EVENT,
    FILLED_DEFAULTS,
    MEMBERS_EVENT,
    OLDER_JOBS_EVENT,
    PRESENCE_EVENT,
    PROGRESS_EVENT,
    PROJECTS_EVENT,
    SNAPSHOT_EVENT,
)
from rxapp.runtime import core
from rxapp.states.pending import pending_jobs
from rxapp.states.room import ProjectRoom

room_project = ClientStateVar.create("roomProject", default={"id": 0, "name": "", "autorun": False})
room_jobs = ClientStateVar.create("roomJobs", default=[])
#: The project has jobs older than those the tab holds (`Older jobs` loads the next page).
room_more_jobs = ClientStateVar.create("roomMoreJobs", default=False)
room_nodes = ClientStateVar.create("roomNodes", default=[])
#: This tab's role in the project: "" before it is known and once access ended.
room_access = ClientStateVar.create("roomAccess", default={"project_id": 0, "role": ""})
room_members = ClientStateVar.create("roomMembers", default=[])
room_presence = ClientStateVar.create("roomPresence", default=[])
#: Nodes whose prompt someone else rewrote after this tab typed in it.
room_overwritten = ClientStateVar.create("roomOverwritten", default=[])
#: Live progress of the project's unfinished jobs (`core.jobs.progress.ProgressRow`s); read by components/progress.py.
room_progress = ClientStateVar.create("roomProgress", default=[])

#: What components read.
project_name = room_project.value.to(dict[str, str])["name"].to(str)
project_autorun = room_project.value.to(dict[str, bool])["autorun"].to(bool)
jobs = room_jobs.value.to(list[JobView])
more_jobs = room_more_jobs.value.to(bool)
nodes = room_nodes.value.to(list[NodeView])
members = room_members.value.to(list[MemberView])
present = room_presence.value.to(list[PersonView])
role = room_access.value.to(dict[str, str])["role"].to(str)
#: The page may change the project (editor or owner); a viewer's controls are disabled.
may_edit = (role == Role.EDITOR.value) | (role == Role.OWNER.value)
is_owner = role == Role.OWNER.value
#: The server took this tab out of the project (the owner removed this account).
access_ended = (room_access.value.to(dict[str, str])["project_id"].to(int) != 0) & (role == "")

_JS = (Path(__file__).with_suffix(".js")).read_text()
_RESYNC = rx.Var.create(EventChain.create(value=ProjectRoom.resync, args_spec=no_args_event_spec, key="resync"))
_REFRESH_PROJECTS = rx.Var.create(
    EventChain.create(value=ProjectRoom.refresh_projects, args_spec=no_args_event_spec, key="refreshProjects")
)


def _slot(var: ClientStateVar, field: str = "") -> dict[str, str]:
    """Where ClientStateVar keeps a value and its setter in Reflex's global `refs`.

    `field`: the message field a room message publishes through it.
    """
    slot = {"value": f"_client_state_{var._getter_name}", "setter": f"_client_state_{var._setter_name}"}
    return slot | ({"field": field} if field else {})


def overwritten(node_id: rx.Var) -> rx.Var[bool]:
    """Whether someone else rewrote this node's prompt after this tab typed in it."""
    return rx.Var(
        f"({room_overwritten.value}).includes({node_id})",
        _var_data=rx.vars.VarData.merge(room_overwritten.value._get_all_var_data(), node_id._get_all_var_data()),
    ).to(bool)


def typing_in(node_id: rx.Var) -> rx.Var[str]:
    """Who has the cursor in this node's prompt, as a list of emails ("" when nobody)."""
    return rx.Var(
        f"({present}).filter((p) => p.nodes.includes({node_id})).map((p) => p.email).join(', ')",
        _var_data=rx.vars.VarData.merge(present._get_all_var_data(), node_id._get_all_var_data()),
    ).to(str)


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


def waiting_job_of(node_id: rx.Var) -> ObjectVar[dict[str, str]]:
    """The node's job waiting for its next submit try, if any (`{}` when none), for its card."""
    row: rx.Var = rx.Var(
        f"(({jobs}).find((job) => job.node_id === {node_id} && job.status === 'queued' && job.retry_at) ?? {{}})",
        _var_data=rx.vars.VarData.merge(jobs._get_all_var_data(), node_id._get_all_var_data()),
    )
    return cast(ObjectVar[dict[str, str]], row.to(dict[str, str]))


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
        for chain in (_RESYNC, _REFRESH_PROJECTS):
            var_data = chain._get_all_var_data()
            for library, tags in var_data.imports if var_data else ():
                imports.setdefault(library, []).extend(tags)
        return imports

    def add_custom_code(self) -> list[str]:
        config = {
            "project": _slot(room_project),
            "jobs": _slot(room_jobs),
            "moreJobs": _slot(room_more_jobs),
            "nodes": _slot(room_nodes),
            "access": _slot(room_access),
            "members": _slot(room_members, "members"),
            "presence": _slot(room_presence, "people"),
            "overwritten": _slot(room_overwritten),
            "pending": _slot(pending_jobs),
            "progress": _slot(room_progress),
            "snapshotEvent": SNAPSHOT_EVENT,
            "changeEvent": CHANGE_EVENT,
            "accessEvent": ACCESS_EVENT,
            "membersEvent": MEMBERS_EVENT,
            "olderJobsEvent": OLDER_JOBS_EVENT,
            "presenceEvent": PRESENCE_EVENT,
            "projectsEvent": PROJECTS_EVENT,
            "progressEvent": PROGRESS_EVENT,
            "ended": [status.value for status in JobStatus if status.is_terminal],
            "queueLimit": core.settings.queue_rows,
            "historyLimit": HISTORY_LIMIT,
            "rowDefaults": FILLED_DEFAULTS,
            "cardImage": {"copies": [[copy_suffix(s), s] for s in DERIVATIVE_SIDES], "sizes": CARD_IMAGE_SIZES},
        }
        chains = ', "resync": ' + str(_RESYNC) + ', "refreshProjects": ' + str(_REFRESH_PROJECTS)
        literal = json.dumps(config)[:-1] + chains + "}"
        return [_JS.replace("__ROOM_CONFIG__", literal)]


def room_store() -> rx.Component:
    """The lists' hooks, once at the top of the page that renders them."""
    return rx.fragment(
        room_project,
        room_jobs,
        room_more_jobs,
        room_nodes,
        room_access,
        room_members,
        room_presence,
        room_overwritten,
        room_progress,
    )
