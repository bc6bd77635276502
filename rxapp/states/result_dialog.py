"""A result opened large: which node and image, what made it, the node's others, the file name
its Download gives.

Per tab: opening a result in one tab opens nothing elsewhere. What made it and the node's
results are read from the server when it opens and at each step (ArrowLeft/ArrowRight).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re

import reflex as rx

from core.errors import NotFound
from rxapp.runtime import core
from rxapp.states.room import ProjectRoom
from rxapp.states.viewer import current_viewer

#: Words of the prompt that name a downloaded file.
FILE_NAME_WORDS = 8


def download_name(prompt: str, url: str, node_id: int) -> str:
    """`a-red-kite-over-the-sea.png`: the prompt's first words, safe in any file system."""
    words = re.findall(r"[^\W_]+", prompt.lower())[:FILE_NAME_WORDS]
    stem = "-".join(words)[:80].strip("-") or f"node-{node_id}"
    extension = url.rsplit(".", 1)[-1].split("?")[0] if "." in url.rsplit("/", 1)[-1] else "png"
    return f"{stem}.{extension}"


class ResultDialog(rx.State):
    node_id: int = 0
    url: str = ""
    file_name: str = ""
    is_open: bool = False
    #: The node's results, newest first, to step through; and where `url` is among them.
    results: list[str] = []
    index: int = 0
    #: What made it: prompt, model, aspect_ratio, provider, seed, made_at ({} when unknown).
    details: dict[str, str] = {}
    #: Side by side with the node's current result (or, for that one, the result before it).
    comparing: bool = False

    @rx.event
    async def show(self, node_id: int, url: str, prompt: str):
        self.node_id, self.url, self.file_name = node_id, url, download_name(prompt, url, node_id)
        self.is_open, self.comparing, self.details, self.results = True, False, {}, [url]
        await self._load(with_results=True)

    @rx.event
    async def step(self, delta: int):
        """ArrowLeft (-1, newer) / ArrowRight (+1, older) through the node's results."""
        to = self.index + delta
        if 0 <= to < len(self.results):
            self.url = self.results[to]
            await self._load(with_results=False)

    @rx.event
    def compare(self):
        self.comparing = not self.comparing

    @rx.event
    def set_open(self, is_open: bool):
        self.is_open = is_open

    async def _load(self, *, with_results: bool) -> None:
        viewer = await current_viewer(self)
        project_id = (await self.get_state(ProjectRoom)).project_id
        if viewer is None or not project_id:
            return
        try:
            await asyncio.to_thread(core.access.project, viewer.id, project_id)
            if with_results and self.node_id:
                if await asyncio.to_thread(core.access.node, viewer.id, self.node_id) != project_id:
                    return
                self.results = await asyncio.to_thread(core.results.of_node, self.node_id) or [self.url]
            details = await asyncio.to_thread(core.results.details, project_id, self.url)
        except NotFound:
            self.details = {}
        else:
            self.details = {k: str(v) for k, v in dataclasses.asdict(details).items()}
            self.file_name = download_name(details.prompt, self.url, self.node_id)
        self.index = self.results.index(self.url) if self.url in self.results else 0

    @rx.var
    def neighbour(self) -> str:
        """The result beside this one in the node's list (the one before it, else after): what
        the current result is compared with."""
        for at in (self.index + 1, self.index - 1):
            if 0 <= at < len(self.results):
                return self.results[at]
        return ""
