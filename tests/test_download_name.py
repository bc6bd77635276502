"""A result's Download is named after its node's prompt."""

from __future__ import annotations

from rxapp.states.result_dialog import download_name


def test_a_download_is_named_after_the_prompt() -> None:
    assert download_name("A mountain lake, at dawn!", "/media/ab12.png", 3) == "a-mountain-lake-at-dawn.png"
    assert download_name("  ", "/media/ab12.webp", 3) == "node-3.webp"
    assert download_name("../../etc/passwd", "/media/x.png", 1) == "etc-passwd.png"
