"""Uploading input images for an edit node.

Reflex hoists an upload zone's hooks out of `rx.foreach`, so the page has one
hidden upload zone; a node's "Upload images" button remembers which node asked
(per tab) and opens the zone's file chooser.
"""

from __future__ import annotations

import asyncio

import reflex as rx
from reflex.event import EventSpec

from core.errors import InvalidInput, NotAllowed, NotFound
from core.media.store import ImageRejected
from rxapp.runtime import core
from rxapp.states.viewer import current_viewer, to_login

UPLOAD_ID = "node-input-upload"
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
#: What the file chooser takes, and what an upload error says it takes.
ACCEPTED = {"image/png": [".png"], "image/jpeg": [".jpg", ".jpeg"], "image/webp": [".webp"]}
ACCEPTED_TYPES = "PNG, JPEG or WebP images up to 10 MB"


def upload_failed(name: str, why: str) -> EventSpec:
    """An upload's error says it was the upload, and what it takes."""
    return rx.toast.error(f"Upload of {name} failed: {why}. Accepted: {ACCEPTED_TYPES}.")


class UploadState(rx.State):
    target_node: int = 0

    @rx.event
    def choose_files(self, node_id: int):
        self.target_node = node_id
        return rx.call_script(f"document.querySelector('#{UPLOAD_ID} input[type=file]').click()")

    @rx.event
    async def receive(self, files: list[rx.UploadFile]):
        viewer = await current_viewer(self)
        if viewer is None:
            return to_login()
        try:
            project_id = await asyncio.to_thread(core.access.node, viewer.id, self.target_node)
            await asyncio.to_thread(core.access.may_act, viewer.id, project_id, node_id=self.target_node)
        except (NotFound, NotAllowed) as exc:
            return rx.toast.error(str(exc))
        saved: list[str] = []
        for upload in files:
            data = await upload.read()
            if len(data) > MAX_UPLOAD_BYTES:
                return upload_failed(upload.name or "a file", "larger than 10 MB")
            try:
                saved.append(await asyncio.to_thread(core.media.save, data))
                await asyncio.to_thread(core.access.grant_media, viewer.id, saved[-1])
            except ImageRejected as exc:
                return upload_failed(upload.name or "a file", str(exc))
        if not saved or not self.target_node:
            return None
        try:
            await asyncio.to_thread(lambda: core.canvas.change_inputs(self.target_node, add=saved))
        except (InvalidInput, NotFound) as exc:
            return rx.toast.error(str(exc))
        return None

    @rx.event
    def rejected(self, files: list[dict]):
        """Files the chooser refused (a type it does not take, too many): said, not dropped silently."""
        names = ", ".join(
            str(f.get("file", {}).get("path") or f.get("file", {}).get("name") or "a file") for f in files
        )
        return upload_failed(names or "a file", "not an image the app takes, or more than 4 files")


def upload_zone() -> rx.Component:
    return rx.upload.root(
        rx.box(),
        id=UPLOAD_ID,
        accept=ACCEPTED,
        max_files=4,
        on_drop=UploadState.receive(rx.upload_files(upload_id=UPLOAD_ID)),  # type: ignore[operator]  # an @rx.event handler: see pyproject
        on_drop_rejected=UploadState.rejected,
        display="none",
    )
