"""Pillow drawings for the local provider: deterministic from the prompt."""

from __future__ import annotations

import hashlib
import io
import random
import textwrap

from PIL import Image, ImageDraw, ImageFont, ImageOps

LONG_SIDE = 512


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
    """The same prompt draws the same picture; `salt` varies it per input image."""
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


def render_text_to_image(prompt: str, aspect_ratio: str) -> bytes:
    rng = _rng(prompt)
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


def render_edit(prompt: str, aspect_ratio: str, inputs: list[bytes]) -> bytes:
    """A visible transformation: inputs tiled, colours inverted and posterised, captioned."""
    width, height = size_for(aspect_ratio)
    canvas = Image.new("RGB", (width, height))
    tile = width // max(1, len(inputs))
    for i, data in enumerate(inputs):
        with Image.open(io.BytesIO(data)) as source:
            piece = ImageOps.fit(source.convert("RGB"), (tile, height))
        piece = ImageOps.posterize(ImageOps.invert(piece), 3)
        if _rng(prompt, i).random() < 0.5:
            piece = ImageOps.mirror(piece)
        canvas.paste(piece, (i * tile, 0))
    _caption(canvas, f"edit: {prompt}")
    return _png(canvas)
