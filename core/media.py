"""Stored images: downloaded once, checked to be images, served by the app.

Provider result URLs expire, so a result is copied here the moment it arrives
(see `core.fetch` for how it is downloaded).
Names are content hashes: storing the same image twice is harmless.
"""

from __future__ import annotations

import hashlib
import io
import re
import uuid
from pathlib import Path

from PIL import Image, UnidentifiedImageError

MEDIA_PREFIX = "/media/"
_FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif"}
_NAME = re.compile(r"^[0-9a-f]{64}\.(png|jpg|webp|gif)$")


class ImageRejected(Exception):
    """The bytes at a result URL are not an image we will store.

    `retryable` when the download itself broke (a dropped connection, a 5xx): the image
    may be fine, and asking again later may get it.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


def image_extension(data: bytes) -> str:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
            fmt = image.format or ""
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ImageRejected("The result is not a valid image") from exc
    if fmt not in _FORMATS:
        raise ImageRejected(f"Unsupported image format {fmt or 'unknown'}")
    return _FORMATS[fmt]


class MediaStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def save(self, data: bytes) -> str:
        """Store verified image bytes; returns the app-relative URL."""
        name = f"{hashlib.sha256(data).hexdigest()}.{image_extension(data)}"
        target = self.root / name
        if not target.exists():
            # A private temporary name: two callbacks may store the same image at once.
            partial = target.with_name(f".{name}.{uuid.uuid4().hex}.part")
            partial.write_bytes(data)
            partial.replace(target)
        return MEDIA_PREFIX + name

    def file_for(self, name: str) -> Path | None:
        """The file behind a media name, or None for anything that is not one of ours."""
        if not _NAME.match(name):
            return None
        path = self.root / name
        return path if path.is_file() else None
