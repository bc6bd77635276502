"""A result opened large: which node and image, and the file name its Download gives.

Per tab: opening a result in one tab opens nothing elsewhere.
"""

from __future__ import annotations

import re

import reflex as rx

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

    @rx.event
    def show(self, node_id: int, url: str, prompt: str):
        self.node_id, self.url, self.file_name = node_id, url, download_name(prompt, url, node_id)
        self.is_open = True

    @rx.event
    def set_open(self, is_open: bool):
        self.is_open = is_open
