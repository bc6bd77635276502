"""Who the person in a tab is, read from the session cookie on every event.

The cookie reaches the server with the websocket handshake (Reflex keeps the
headers server-side and never sends the cookie to the browser), so an event
cannot claim another user; a session ended elsewhere takes effect at once.
"""

from __future__ import annotations

import asyncio

import reflex as rx
from reflex.event import EventSpec

from core.people.accounts import UserView
from rxapp.auth import session_token
from rxapp.runtime import core


class ViewerState(rx.State):
    """What the toolbar shows about the person in this tab."""

    email: str = ""
    signed_in: bool = False


async def current_viewer(state: rx.State) -> UserView | None:
    """The acting user, or None when sign-in is required and missing."""
    return await asyncio.to_thread(core.viewer, session_token(state.router.headers.cookie))


def to_login() -> EventSpec:
    """A full page load to the sign-in page, so the next websocket carries the new cookie."""
    return rx.call_script("window.location.replace('/login?next=' + encodeURIComponent(window.location.pathname))")
