"""A running job's latest preview image: one small file per job, gone when the job ends.

A sampler's intermediate image changes several times a second and means nothing once the
result is there, so it is neither stored as media (content-addressed, kept, given copies)
nor sent inside the progress message (a 512-px JPEG is tens of KB, a progress row a few
hundred bytes, and PostgreSQL's NOTIFY takes at most 8,000). It is a file in
`DATA_DIR/previews` (the disk the workers share for media), replaced in place, named by
its project and job: the route that serves it lets only the project's members see it.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from core.media.store import MAX_PIXELS

#: A preview is drawn small (a card is 316 px wide): at most this on its long edge.
MAX_SIDE = 512
JPEG_QUALITY = 70
#: What the app serves a preview as, whatever the provider sent.
MEDIA_TYPE = "image/jpeg"
URL_PREFIX = "/api/previews"
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class PreviewRejected(ValueError):
    """Bytes that are no image we can shrink."""


def shrink(data: bytes) -> bytes:
    """The image as a JPEG of at most `MAX_SIDE` px; a small enough JPEG is kept as it is."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise PreviewRejected(f"a preview of {image.width}x{image.height} px is too large to decode")
            if image.format == "JPEG" and max(image.size) <= MAX_SIDE:
                return data
            image.draft("RGB", (MAX_SIDE, MAX_SIDE))  # a large JPEG decodes at a fraction of its size
            small = image.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise PreviewRejected(f"not an image: {exc}") from exc
    small.thumbnail((MAX_SIDE, MAX_SIDE))
    out = io.BytesIO()
    small.save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


class PreviewStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, project_id: int, job_id: str) -> Path | None:
        """Where the job's preview lives; None for a job id that could name another file."""
        if not _JOB_ID.match(job_id):
            return None
        return self.root / str(int(project_id)) / f"{job_id}.jpg"

    def save(self, project_id: int, job_id: str, data: bytes) -> str:
        """Shrink and write the job's latest preview (atomically: a reader never sees half a file);
        returns its URL path. Raises `PreviewRejected` for bytes that are no image."""
        path = self.path_for(project_id, job_id)
        if path is None:
            raise PreviewRejected(f"bad job id {job_id!r}")
        small = shrink(data)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.part")
        partial.write_bytes(small)
        partial.replace(path)
        return f"{URL_PREFIX}/{project_id}/{job_id}.jpg"

    def read(self, project_id: int, job_id: str) -> bytes | None:
        """The job's latest preview, read whole (it may be replaced while a reader streams it),
        or None when there is none (not yet, or the job ended)."""
        path = self.path_for(project_id, job_id)
        try:
            return path.read_bytes() if path is not None else None
        except FileNotFoundError:
            return None

    def delete_older_than(self, seconds: float, now: float) -> int:
        """Previews of jobs whose end this process never saw (it crashed, or another worker ended
        them): deleted once nobody replaced them for `seconds`. Returns how many."""
        deleted = 0
        for path in self.root.glob("*/*.jpg") if self.root.is_dir() else ():
            with contextlib.suppress(FileNotFoundError):
                if now - path.stat().st_mtime > seconds:
                    path.unlink()
                    deleted += 1
        return deleted

    def delete(self, project_id: int, job_id: str) -> None:
        """The job ended: its preview means nothing now (any worker may ask; the file may be gone)."""
        path = self.path_for(project_id, job_id)
        if path is not None:
            path.unlink(missing_ok=True)
