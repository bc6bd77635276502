"""Results as heavy as a real generator's: what the fakes and the local provider can return."""

from __future__ import annotations

import io

from PIL import Image

from e2e.fakes.render import PHOTO_WEIGHT_ENV, render_result
from providers.local_render import photo_weight, render_text_to_image


def test_a_photo_weight_result_is_a_1024_px_png_of_about_two_megabytes() -> None:
    image = photo_weight(render_text_to_image("a lighthouse at dusk", "1:1"), "a lighthouse at dusk")
    with Image.open(io.BytesIO(image)) as decoded:
        assert (decoded.format, decoded.size) == ("PNG", (1024, 1024))
    assert 1_900_000 <= len(image) <= 2_800_000


def test_the_same_prompt_weighs_the_same_bytes_and_another_differs() -> None:
    drawing = render_text_to_image("a cat", "16:9")
    assert photo_weight(drawing, "a cat") == photo_weight(drawing, "a cat")
    assert photo_weight(drawing, "a cat") != photo_weight(drawing, "a dog")
    with Image.open(io.BytesIO(photo_weight(drawing, "a cat"))) as decoded:
        assert decoded.size == (1024, 576)


async def test_the_fakes_switch_to_photo_weight_by_their_environment(monkeypatch) -> None:
    light = await render_result("a cat", "1:1", [])
    monkeypatch.setenv(PHOTO_WEIGHT_ENV, "1")
    heavy = await render_result("a cat", "1:1", [])
    assert len(light) < 100_000 < 1_900_000 < len(heavy)
