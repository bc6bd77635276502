"""The Share dialog's actions: add a member, change a role, remove one. Only the owner may.

The member list itself is not kept here: the room bridge sends it to every tab of the
project when it changes (`canvas.members`), so every open dialog shows the same list.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import reflex as rx
from reflex.event import EventSpec

from core.access import Role
from core.errors import InvalidInput, NotAllowed, NotFound
from core.logs import get_logger, log_step
from rxapp.runtime import core
from rxapp.states.room import ProjectRoom
from rxapp.states.viewer import current_viewer, to_login

log = get_logger("sharing")


class ShareState(rx.State):
    @rx.event
    async def add(self, form: dict[str, Any]):
        email, role = str(form.get("email", "")), str(form.get("role", ""))
        return await self._as_owner("member.added", lambda project_id: core.sharing.add(project_id, email, role))

    @rx.event
    async def set_role(self, user_id: int, role: str):
        return await self._as_owner(
            "member.role_set", lambda project_id: core.sharing.set_role(project_id, int(user_id), role)
        )

    @rx.event
    async def remove(self, user_id: int):
        return await self._as_owner("member.removed", lambda project_id: core.sharing.remove(project_id, int(user_id)))

    async def _as_owner(self, step: str, change: Callable[[int], object]) -> EventSpec | None:
        """Run a membership change of this tab's project once the server checked the viewer owns it."""
        viewer = await current_viewer(self)
        if viewer is None:
            return to_login()
        project_id = (await self.get_state(ProjectRoom)).project_id
        try:
            await asyncio.to_thread(core.access.may_act, viewer.id, project_id, need=Role.OWNER)
            await asyncio.to_thread(change, project_id)
        except (InvalidInput, NotAllowed, NotFound) as exc:
            return rx.toast.error(str(exc))
        log_step(log, step, project_id=project_id, user_id=viewer.id)
        return None
