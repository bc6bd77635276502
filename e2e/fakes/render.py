"""What the fake providers draw: the local provider's renderer, fed the input URLs' bytes."""

from __future__ import annotations

import os

import httpx

from providers.local_render import photo_weight, render_edit, render_text_to_image

#: `FAKE_PHOTO_WEIGHT=1` in a fake's environment: results as heavy as a real generator's (~2.4 MB).
PHOTO_WEIGHT_ENV = "FAKE_PHOTO_WEIGHT"


async def render_result(prompt: str, aspect_ratio: str, input_urls: list[str], photo: bool | None = None) -> bytes:
    """A real image, as a provider would make it (downloading the inputs as they would).

    `photo`: as heavy as a real result or a ~10 KB drawing; None: as `FAKE_PHOTO_WEIGHT` says.
    """
    async with httpx.AsyncClient(timeout=10) as http:
        inputs = [(await http.get(url)).raise_for_status().content for url in input_urls]
    image = render_edit(prompt, aspect_ratio, inputs) if inputs else render_text_to_image(prompt, aspect_ratio)
    if photo is None:
        photo = os.environ.get(PHOTO_WEIGHT_ENV) == "1"
    return photo_weight(image, prompt) if photo else image
