"""Stored images: downloaded once, checked to be images, served by the app with right-sized copies.

Provider result URLs expire, so a result is copied here the moment it arrives
(see `core.media.fetch` for how it is downloaded).
Names are content hashes: storing the same image twice is harmless.

Beside each original `<sha>.<ext>` the store writes, before the change that shows the image
is published, its *derivatives*: WebP copies at 256, 512 and 768 px on the long edge
(`<sha>.<ext>.w256.webp`, `.w512.webp`, `.w768.webp`) and `<sha>.<ext>.json` with the pixel size and a
ThumbHash, so a tab paints a placeholder of the right shape before any fetch and draws a copy
of the size it shows (a 1024-px photo is ~2.4 MB; its 768-px WebP ~30 KB). Every name only
appends to the original's, so a page derives a copy's URL by concatenation.
Measured on a 1024x1024 PNG photo of 2.4 MB (`bench/derivatives.py`): Pillow and pyvips cost
the same (decoding the PNG alone is 20-23 ms of CPU in either), so Pillow, already here.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import uuid
from pathlib import Path

import thumbhash
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from models.views import ImageInfo

MEDIA_PREFIX = "/media/"
_FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif"}
#: The long edges of the copies a page picks from (`srcset`): 256 for thumbnails, 512 for a
#: 316-px card on a 1x screen, 768 for it on a 2x screen and for the lightbox's first frame.
DERIVATIVE_SIDES = (256, 512, 768)
#: What every copy is (`<name>` + `copy_suffix(side)`).
COPY_MEDIA_TYPE = "image/webp"
_ORIGINAL = r"[0-9a-f]{64}\.(?:png|jpg|webp|gif)"
_NAME = re.compile(rf"^({_ORIGINAL})(\.w(?:{'|'.join(map(str, DERIVATIVE_SIDES))})\.webp)?$")
#: Largest image decoded: 48 MP (an 8000x6000 camera photo). A PNG header may claim 50,000 x
#: 50,000 in a few bytes (a decompression bomb, 10 GB decoded); refused from its header.
MAX_PIXELS = 48_000_000
# Pillow's own guard, set explicitly: it raises (DecompressionBombError) at twice this.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
# A cut-off file is refused, never half decoded into a grey copy.
ImageFile.LOAD_TRUNCATED_IMAGES = False
#: WebP at quality 80, method 0: 9 ms for the 768-px copy against 41 ms at method 4, for 10% more bytes.
_WEBP = {"quality": 80, "method": 0}
#: ThumbHash from at most 16x16 pixels: 1.2 ms in pure Python (32x32: 5 ms, 100x100: 33 ms). It keeps
#: at most 7 coefficients a side, which 16 samples carry: the hash differs from 32x32's in a digit or two.
_HASH_SIDE = 16
_INFOS_KEPT = 50_000
_ORIENTATION = 0x0112
#: EXIF orientations that turn the picture a quarter: its displayed width is its stored height.
_TURNED = {5, 6, 7, 8}


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
            _check_pixels(image)
            image.verify()
            fmt = image.format or ""
    except Image.DecompressionBombError as exc:
        raise ImageRejected(f"The image is too large (more than {MAX_PIXELS:,} pixels)") from exc
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ImageRejected("The result is not a valid image") from exc
    if fmt not in _FORMATS:
        raise ImageRejected(f"Unsupported image format {fmt or 'unknown'}")
    return _FORMATS[fmt]


def _check_pixels(image: Image.Image) -> None:
    if image.width * image.height > MAX_PIXELS:
        raise ImageRejected(f"The image is too large ({image.width} x {image.height} pixels, limit {MAX_PIXELS:,})")


def _displayable(image: Image.Image) -> Image.Image:
    """The first frame, upright, in 8-bit RGB or RGBA: what a browser would show."""
    image.seek(0)  # an animated GIF or WebP: its first frame
    if image.getexif().get(_ORIENTATION, 1) != 1:
        image = ImageOps.exif_transpose(image)  # a phone's JPEG stored sideways with an EXIF turn
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        # 16-bit grey: scale to 8 bits (a plain convert would clip it to white).
        image = image.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    mode = "RGBA" if alpha else "RGB"
    if image.mode == mode:
        # Neither turned nor converted (a generator's PNG): decoded here, not copied (1.5 ms a copy).
        image.load()
        return image
    return image.convert(mode)  # CMYK, YCbCr, palette, grey: converted


def make_derivatives(data: bytes) -> tuple[ImageInfo, dict[int, bytes]]:
    """The image's displayed size, its ThumbHash, and a WebP copy per side in `DERIVATIVE_SIDES`.

    Raises `ImageRejected` for bytes that are no image, or too many pixels. CPU-bound: call it
    off the event loop (`MediaStore.save` runs in a thread).
    """
    try:
        with Image.open(io.BytesIO(data)) as opened:
            _check_pixels(opened)
            width, height = opened.size
            if opened.getexif().get(_ORIENTATION, 1) in _TURNED:
                width, height = height, width
            # A JPEG decodes at 1/2, 1/4 or 1/8 scale when that still covers the largest copy.
            opened.draft("RGB", (max(DERIVATIVE_SIDES), max(DERIVATIVE_SIDES)))
            image = _displayable(opened)
    except Image.DecompressionBombError as exc:
        raise ImageRejected(f"The image is too large (more than {MAX_PIXELS:,} pixels)") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected("The image cannot be decoded") from exc
    copies: dict[int, bytes] = {}
    encoded: dict[tuple[int, int], bytes] = {}
    sources = [image]  # the decoded image, then each copy made, largest first
    for side in sorted(DERIVATIVE_SIDES, reverse=True):
        # From the smallest source whose long edge is a whole multiple of `side` (exact block
        # averaging: the 512-px copy of a 1024-px image in 1.3 ms against 5.2 from the 768-px
        # one), else from the next larger copy.
        source = next((s for s in reversed(sources) if _multiple_of(s, side)), sources[-1])
        image = _scaled(source, side)
        sources.append(image)
        if image.size not in encoded:  # an image smaller than two sides: one encoding for both
            out = io.BytesIO()
            image.save(out, format="WEBP", **_WEBP)
            encoded[image.size] = out.getvalue()
        copies[side] = encoded[image.size]
    rgba = _scaled(image, _HASH_SIDE).convert("RGBA")
    digest = bytes(thumbhash.rgba_to_thumb_hash(rgba.width, rgba.height, list(rgba.tobytes())))
    return ImageInfo(width=width, height=height, thumbhash=base64.b64encode(digest).decode()), copies


def _multiple_of(image: Image.Image, side: int) -> bool:
    long_edge = max(image.size)
    return long_edge > side and long_edge % side == 0


def _scaled(image: Image.Image, side: int) -> Image.Image:
    """The image with its long edge at most `side` (itself when it is no larger).

    Bilinear (a 768-px copy of a 1024-px photo: 8 ms, bicubic 10); where the ratio is two or
    more, Pillow first averages whole blocks (`reducing_gap`), so the ThumbHash's 16 px come
    from the 256-px copy in well under a millisecond.
    """
    scale = min(side / image.width, side / image.height)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=1.0)


def copy_suffix(side: int) -> str:
    """What a copy's name adds to its original's (a page derives a copy's URL the same way)."""
    return f".w{side}.webp"


def original_name(name: str) -> str | None:
    """The original's name behind a media name (itself, or the image a copy was made from)."""
    matched = _NAME.match(name)
    return matched.group(1) if matched else None


class MediaStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._infos: dict[str, ImageInfo] = {}

    def save(self, data: bytes) -> str:
        """Store verified image bytes and their derivatives; returns the app-relative URL.

        The derivatives are written first and the original last, so an original on disk
        always has its copies (an image stored before they existed gets them here, or from
        `python -m core.media.backfill`, or on its first request).
        """
        name = f"{hashlib.sha256(data).hexdigest()}.{image_extension(data)}"
        if self.info(name) is None:
            self._write_derivatives(name, data)
        self._write(name, data)
        return MEDIA_PREFIX + name

    def ensure_derivatives(self, name: str) -> bool:
        """Make the copies of a stored original that lacks them; False when it has them already."""
        if self.info(name) is not None and all(
            (self.root / (name + copy_suffix(s))).is_file() for s in DERIVATIVE_SIDES
        ):
            return False
        self._write_derivatives(name, (self.root / name).read_bytes())
        return True

    def _write_derivatives(self, name: str, data: bytes) -> None:
        info, copies = make_derivatives(data)
        for side, copy in copies.items():
            self._write(name + copy_suffix(side), copy)
        # Last: the size and ThumbHash on disk say the copies are complete.
        self._write(f"{name}.json", json.dumps({"w": info.width, "h": info.height, "th": info.thumbhash}).encode())
        self._remember(name, info)

    def _write(self, name: str, data: bytes) -> None:
        target = self.root / name
        if not target.exists():
            # A private temporary name: two callbacks may store the same image at once.
            partial = target.with_name(f".{name}.{uuid.uuid4().hex}.part")
            partial.write_bytes(data)
            partial.replace(target)

    def info(self, url_or_name: str) -> ImageInfo | None:
        """A stored image's displayed size and ThumbHash; None while its derivatives are missing.

        Kept in memory once read: a name is a content hash, so what it names never changes.
        """
        name = url_or_name.removeprefix(MEDIA_PREFIX)
        if (known := self._infos.get(name)) is not None:
            return known
        if original_name(name) != name:
            return None
        try:
            raw = json.loads((self.root / f"{name}.json").read_bytes())
        except (OSError, ValueError):
            return None
        info = ImageInfo(width=raw["w"], height=raw["h"], thumbhash=raw["th"])
        self._remember(name, info)
        return info

    def _remember(self, name: str, info: ImageInfo) -> None:
        if len(self._infos) >= _INFOS_KEPT:
            self._infos.clear()  # a bound, not a policy: rereading a small file is cheap
        self._infos[name] = info

    def remove(self, name: str) -> None:
        """An original no project uses any more, with its copies and its size file."""
        for file in (name, f"{name}.json", *(name + copy_suffix(side) for side in DERIVATIVE_SIDES)):
            (self.root / file).unlink(missing_ok=True)
        self._infos.pop(name, None)

    def file_for(self, name: str) -> Path | None:
        """The file behind a media name (an original or a copy), or None for anything not one of ours.

        A copy missing on disk (an image stored before copies existed, a deleted file) is made
        now from its original: CPU-bound, so call this off the event loop.
        """
        original = original_name(name)
        if original is None or not (self.root / original).is_file():
            return None
        path = self.root / name
        if not path.is_file():
            try:
                self.ensure_derivatives(original)
            except ImageRejected:
                return None
        return path if path.is_file() else None
