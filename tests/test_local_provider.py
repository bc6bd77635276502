"""The local provider's images and its logging, without the app."""

from __future__ import annotations

import io
import json
import logging

import pytest
from PIL import Image

from models.logs import DevFormatter, JsonFormatter, get_logger, log_step
from providers.local_render import render_edit, render_text_to_image, size_for


@pytest.mark.parametrize(
    ("ratio", "size"), [("1:1", (512, 512)), ("16:9", (512, 288)), ("9:16", (288, 512)), ("nonsense", (512, 512))]
)
def test_images_have_the_requested_shape(ratio: str, size: tuple[int, int]) -> None:
    assert size_for(ratio) == size
    with Image.open(io.BytesIO(render_text_to_image("a cat", ratio))) as image:
        assert image.size == size


def test_rendering_is_deterministic_per_prompt_and_seed() -> None:
    assert render_text_to_image("a cat", "1:1") == render_text_to_image("a cat", "1:1")
    assert render_text_to_image("a cat", "1:1") != render_text_to_image("a dog", "1:1")
    assert render_text_to_image("a cat", "1:1", seed=1) != render_text_to_image("a cat", "1:1", seed=2)


def test_edit_visibly_transforms_its_input() -> None:
    source = render_text_to_image("a cat", "1:1")
    edited = render_edit("at night", "1:1", [source])
    with Image.open(io.BytesIO(source)) as a, Image.open(io.BytesIO(edited)) as b:
        top_a, top_b = a.convert("RGB").getpixel((5, 5)), b.convert("RGB").getpixel((5, 5))
    assert top_a != top_b


def _record(step: str, **fields: object) -> logging.LogRecord:
    captured: list[logging.LogRecord] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            captured.append(record)

    logger = get_logger("test")
    logger.addHandler(handler := Capture())
    logger.setLevel(logging.INFO)
    try:
        log_step(logger, step, **fields)
    finally:
        logger.removeHandler(handler)
    return captured[0]


def test_json_log_lines_carry_job_id_and_step_and_hide_secrets() -> None:
    record = _record("webhook.received", job_id="abc123", project_id=7, callback_token="s3cret")
    line = json.loads(JsonFormatter().format(record))
    assert (line["step"], line["job_id"], line["project_id"]) == ("webhook.received", "abc123", 7)
    assert line["callback_token"] == "***"
    dev = DevFormatter().format(record)
    assert "job_id=abc123" in dev
    assert "s3cret" not in dev
