"""Which node's prompt this tab's cursor is in, for the Presence list (the room bridge keeps it)."""

from __future__ import annotations

import asyncio

import reflex as rx

from core.errors import NotFound
from rxapp.runtime import bridge, core
from rxapp.states.room import ProjectRoom
from rxapp.states.viewer import current_viewer


class PresenceState(rx.State):
    @rx.event
    async def typing_in(self, node_id: int):
        """The cursor entered the node's prompt (0: it left); a node of another project is ignored."""
        viewer = await current_viewer(self)
        project_id = (await self.get_state(ProjectRoom)).project_id
        if viewer is None or not project_id:
            return
        if node_id:
            try:
                if await asyncio.to_thread(core.access.node, viewer.id, int(node_id)) != project_id:
                    return
            except NotFound:
                return
        await bridge.typing(self.router.session.session_id, project_id, int(node_id))
