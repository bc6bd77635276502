"""The local provider's images and its logging, without the app."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from providers.local_render import render_edit, render_text_to_image, size_for


@pytest.mark.parametrize(
    ("ratio", "size"), [("1:1", (512, 512)), ("16:9", (512, 288)), ("9:16", (288, 512)), ("nonsense", (512, 512))]
)
def test_images_have_the_requested_shape(ratio: str, size: tuple[int, int]) -> None:
    assert size_for(ratio) == size
    with Image.open(io.BytesIO(render_text_to_image("a cat", ratio))) as image:
        assert image.size == size


def test_rendering_is_deterministic_per_prompt() -> None:
    assert render_text_to_image("a cat", "1:1") == render_text_to_image("a cat", "1:1")
    assert render_text_to_image("a cat", "1:1") != render_text_to_image("a dog", "1:1")
    assert render_text_to_image("a cat", "1:1") != render_text_to_image("a cat", "16:9")


def test_edit_visibly_transforms_its_input() -> None:
    source = render_text_to_image("a cat", "1:1")
    edited = render_edit("at night", "1:1", [source])
    with Image.open(io.BytesIO(source)) as a, Image.open(io.BytesIO(edited)) as b:
        top_a, top_b = a.convert("RGB").getpixel((5, 5)), b.convert("RGB").getpixel((5, 5))
    assert top_a != top_b
