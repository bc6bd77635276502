"""The Share dialog's actions: add (invite) someone, change a role, remove a member or an
invitation, and the invitation links. Only the owner may; the server checks it every time.

The member list itself is not kept here: the room bridge sends it to every tab of the
project when it changes (`canvas.members`), so every open dialog shows the same list. The
invitation links are not in it (every member's tab gets that list): the owner's tab asks
for them here, and they stay in this tab's server-side state until it asks again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import reflex as rx
from reflex.event import EventSpec

from core.errors import InvalidInput, NotAllowed, NotFound
from core.logs import get_logger, log_step
from core.people.access import Role
from rxapp.runtime import core
from rxapp.states.room import ProjectRoom
from rxapp.states.viewer import current_viewer, to_login

log = get_logger("sharing")


class ShareState(rx.State):
    #: Each invitation's full link, by invitation id (a string: the key of a JSON object).
    links: dict[str, str] = {}

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

    @rx.event
    async def revoke(self, invite_id: int):
        return await self._as_owner(
            "invite.revoked", lambda project_id: core.sharing.revoke(project_id, int(invite_id))
        )

    @rx.event
    async def opened(self, is_open: bool):
        """The Share dialog opened (or closed: nothing to do)."""
        return await self._read_links() if is_open else None

    @rx.event
    async def load_links(self):
        """The dialog shows an invitation whose link this tab has not read yet."""
        return await self._read_links()

    async def _read_links(self) -> EventSpec | None:
        return await self._as_owner("invite.links_read", lambda project_id: None, quiet=True)

    async def _as_owner(
        self, step: str, change: Callable[[int], str | None], *, quiet: bool = False
    ) -> EventSpec | None:
        """Run a sharing change of this tab's project once the server checked the viewer owns it,
        then read the invitation links again (the change may have made or ended one)."""
        viewer = await current_viewer(self)
        if viewer is None:
            return to_login()
        project_id = (await self.get_state(ProjectRoom)).project_id
        try:
            await asyncio.to_thread(core.access.may_act, viewer.id, project_id, need=Role.OWNER)
            answer = await asyncio.to_thread(change, project_id)
        except (InvalidInput, NotAllowed, NotFound) as exc:
            self.links = {}
            return None if quiet else rx.toast.error(str(exc))
        paths = await asyncio.to_thread(core.sharing.invite_links, project_id)
        origin = self.router.url.origin if self.router.url.netloc else core.settings.base_url
        self.links = {str(invite_id): origin + path for invite_id, path in paths.items()}
        if not quiet:
            log_step(log, step, project_id=project_id, user_id=viewer.id)
        return rx.toast.success(answer) if answer else None
