"""Percent from a sampler's progress-bar lines (tqdm), as Replicate and Fal.ai pass them on."""

from __future__ import annotations

import pytest

from e2e.fakes.sampler_logs import STEPS, bar_line
from providers.log_progress import percent_from_logs


@pytest.mark.parametrize(
    ("lines", "percent"),
    [
        ([], None),
        (["Running prediction...", "Generating image"], None),
        (["  5%|▌         | 1/20 [00:00<00:04,  4.68it/s]"], 5.0),
        (["  5%|▌         | 1/20", " 45%|████▌     | 9/20 [00:02<00:02,  4.50it/s]", "saving"], 45.0),
        (["  0%|          | 0/20\r 50%|█████     | 10/20"], 50.0),  # a terminal rewrote its line
        (["100%|██████████| 20/20 [00:04<00:00,  4.61it/s]"], 100.0),
        (["33%|###3      | 1/3"], 100 / 3),  # ASCII bars too
        (["the 45% mark | not a bar | 1/2 of it"], None),
    ],
)
def test_the_last_bar_gives_the_percent(lines: list[str], percent: float | None) -> None:
    assert percent_from_logs(lines) == (pytest.approx(percent) if percent is not None else None)


def test_the_fakes_print_bars_the_app_reads() -> None:
    assert [percent_from_logs([bar_line(step, elapsed_s=step * 0.2)]) for step in (1, STEPS)] == [100 / STEPS, 100.0]
