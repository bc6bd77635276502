"""Pillow drawings for the local provider: deterministic from the prompt."""

from __future__ import annotations

import hashlib
import io
import random
import textwrap

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont, ImageOps

LONG_SIDE = 512
#: Real generators return 1024-px PNG photos of 2 to 2.6 MB; `photo_weight` makes ours as heavy.
PHOTO_LONG_SIDE = 1024
#: Film grain's spread: at 10, a 1024x1024 result is about 2.4 MB of PNG, like a real photo's.
_GRAIN_SIGMA = 10
_grain: Image.Image | None = None


def size_for(aspect_ratio: str) -> tuple[int, int]:
    """`"16:9"` -> (512, 288); anything unparsable is square."""
    try:
        w, h = (float(x) for x in aspect_ratio.split(":"))
    except ValueError:
        return LONG_SIDE, LONG_SIDE
    if w <= 0 or h <= 0:
        return LONG_SIDE, LONG_SIDE
    scale = LONG_SIDE / max(w, h)
    return round(w * scale), round(h * scale)


def _rng(prompt: str, salt: int = 0) -> random.Random:
    """The same prompt and seed draw the same picture; `salt` is the seed (and the input image)."""
    digest = hashlib.sha256(f"{salt}:{prompt}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _caption(image: Image.Image, text: str) -> None:
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(14, image.width // 24))
    lines = textwrap.wrap(text, width=max(12, image.width // 14))[:6]
    block = "\n".join(lines)
    _, top, _, bottom = draw.multiline_textbbox((0, 0), block, font=font)
    pad = 10
    y = image.height - (bottom - top) - 3 * pad
    draw.rectangle((0, y - pad, image.width, image.height), fill=(0, 0, 0))
    draw.multiline_text((pad, y), block, fill=(255, 255, 255), font=font)


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False)
    return out.getvalue()


def render_text_to_image(prompt: str, aspect_ratio: str, seed: int = 0) -> bytes:
    rng = _rng(prompt, seed)
    width, height = size_for(aspect_ratio)
    top = tuple(rng.randrange(256) for _ in range(3))
    bottom = tuple(rng.randrange(256) for _ in range(3))
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):
        t = y / max(1, height - 1)
        draw.line([(0, y), (width, y)], fill=tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    for _ in range(12):
        x, y, r = rng.randrange(width), rng.randrange(height), rng.randrange(10, LONG_SIDE // 5)
        colour = tuple(rng.randrange(256) for _ in range(3))
        if rng.random() < 0.5:
            draw.ellipse((x - r, y - r, x + r, y + r), outline=colour, width=4)
        else:
            draw.rectangle((x - r, y - r, x + r, y + r), fill=colour)
    _caption(image, prompt)
    return _png(image)


def render_edit(prompt: str, aspect_ratio: str, inputs: list[bytes], seed: int = 0) -> bytes:
    """A visible transformation: inputs tiled, colours inverted and posterised, captioned."""
    width, height = size_for(aspect_ratio)
    canvas = Image.new("RGB", (width, height))
    tile = width // max(1, len(inputs))
    for i, data in enumerate(inputs):
        with Image.open(io.BytesIO(data)) as source:
            piece = ImageOps.fit(source.convert("RGB"), (tile, height))
        piece = ImageOps.posterize(ImageOps.invert(piece), 3)
        if _rng(prompt, seed * 16 + i).random() < 0.5:
            piece = ImageOps.mirror(piece)
        canvas.paste(piece, (i * tile, 0))
    _caption(canvas, f"edit: {prompt}")
    return _png(canvas)


def _grain_field() -> Image.Image:
    """One square of Gaussian grain per process (about 40 ms), shifted per prompt: noise costs once."""
    global _grain
    if _grain is None:
        _grain = Image.effect_noise((PHOTO_LONG_SIDE, PHOTO_LONG_SIDE), _GRAIN_SIGMA)
    return _grain


def photo_weight(png: bytes, prompt: str) -> bytes:
    """The drawing at 1024 px on the long edge with a photo's grain, as heavy as a real result.

    A photo's PNG is large because its pixels are noisy, and what decoding, resizing and
    serving cost depends on that weight: 10 KB drawings hid it from every test. Deterministic
    per prompt (the grain is shifted by the prompt's hash), about 150 ms of CPU.
    """
    with Image.open(io.BytesIO(png)) as drawing:
        scale = PHOTO_LONG_SIDE / max(drawing.size)
        size = (round(drawing.width * scale), round(drawing.height * scale))
        base = drawing.convert("RGB").resize(size, Image.Resampling.BICUBIC)
    rng = _rng(prompt, salt=-1)
    grain = ImageChops.offset(_grain_field(), rng.randrange(size[0]), rng.randrange(size[1])).crop((0, 0, *size))
    # Three shifted copies: colour grain, not grey.
    noise = Image.merge("RGB", (grain, ImageChops.offset(grain, 7, 3), ImageChops.offset(grain, 3, 11)))
    out = io.BytesIO()
    ImageChops.add(base, noise, offset=-128).save(out, format="PNG", compress_level=1)
    return out.getvalue()


#: A sampler's preview is a rough look, not the picture: small and quickly encoded.
PREVIEW_SIDE = 256


class SamplerPreviews:
    """What a diffusion sampler shows on its way to `png`: noise clearing into the image (JPEGs).

    The small image and its noise are made once; each step costs a blur, a blend and an encode.
    """

    def __init__(self, png: bytes) -> None:
        with Image.open(io.BytesIO(png)) as result:
            self.image = result.convert("RGB")
        self.image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
        self.noise = Image.effect_noise(self.image.size, 64).convert("RGB")

    def at(self, done: float) -> bytes:
        """The preview `done` (0-1) of the way."""
        blurred = self.image.filter(ImageFilter.GaussianBlur(radius=12 * (1 - done)))
        out = io.BytesIO()
        Image.blend(self.noise, blurred, min(1.0, 0.25 + 0.75 * done)).save(out, format="JPEG", quality=60)
        return out.getvalue()
