"""The Reflex internals the room broadcast relies on: a Reflex upgrade that moves one fails here.

rxapp/realtime/bridge.py puts a tab's socket in a socket.io room by the sid Reflex gives the
state, and emits through the app's namespace; realtime/room_store.py writes the
ClientStateVars through Reflex's global `refs` and listens on the page's
socket.io-client socket; e2e/socket_tabs.py speaks the page's boot protocol.
"""

from __future__ import annotations

import inspect
import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import reflex as rx
import socketio
from reflex.app import App, EventNamespace
from reflex.experimental.client_state import ClientStateVar
from reflex.istate.data import SessionData
from reflex_base.constants.installer import PackageJson

from e2e.socket_tabs import BACKEND_EVENT_PREFIX, BOOT_EVENT, handler_name

ROOT = Path(__file__).resolve().parents[1]


def test_reflex_is_pinned_exactly_to_the_version_installed() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = [d for d in dependencies if re.match(r"reflex\b", d)]
    assert pinned == [f"reflex=={version('reflex')}"]
    assert version("reflex") == "0.10.1"


def test_the_app_serves_its_socket_from_one_namespace_with_process_local_rooms() -> None:
    assert isinstance(inspect.getattr_static(App, "event_namespace"), property)
    assert issubclass(EventNamespace, socketio.AsyncNamespace)
    for method in ("enter_room", "leave_room", "rooms", "emit"):
        assert callable(getattr(EventNamespace, method))
    # No client_manager: socket.io's default AsyncManager keeps rooms in this process, so
    # each worker's emit reaches its own tabs and nothing is relayed through Redis.
    setup = inspect.getsource(App._setup_state)
    assert "AsyncServer(" in setup and "client_manager" not in setup
    assert "get_participants" in dir(socketio.AsyncManager)


def test_a_states_session_id_is_its_sockets_sid() -> None:
    static = inspect.getsource(EventNamespace._build_static_router_data)
    assert "constants.RouteVar.SESSION_ID: sid" in static
    assert "session_id" in SessionData.__dataclass_fields__
    assert "session_id=router_data.get(constants.RouteVar.SESSION_ID" in inspect.getsource(SessionData.from_router_data)


def test_client_state_vars_live_in_refs_under_the_names_the_room_store_writes() -> None:
    from rxapp.realtime.room_store import _slot

    var = ClientStateVar.create("pinProbe", default=[])
    slot = _slot(var)
    hooks = "\n".join(str(h) for h in (var._get_all_var_data().hooks or ()))
    assert f"refs['{slot['setter']}'] =" in hooks
    assert f"refs['{slot['value']}'] ??=" in hooks
    assert f"'{slot['value']}' in refs ? refs['{slot['value']}']" in hooks  # a value set before mount is used


def test_the_page_socket_is_the_socket_io_client_whose_onevent_the_store_wraps() -> None:
    # room_store.js wraps socket.io-client's `Socket.prototype.onevent` (4.x).
    assert PackageJson.DEPENDENCIES["socket.io-client"] == "4.8.4"


def test_the_boot_event_socket_tabs_send_is_the_pages() -> None:
    assert rx.State.get_full_name() + "." == BACKEND_EVENT_PREFIX
    assert f"{rx.State.get_full_name()}.hydrate_and_load" == BOOT_EVENT
    assert hasattr(rx.State, "hydrate_and_load")


def test_socket_tabs_name_handlers_as_reflex_does() -> None:
    from rxapp.states.room import ProjectRoom

    assert handler_name("rxapp.states.room", "ProjectRoom", "resync") == f"{ProjectRoom.get_full_name()}.resync"
