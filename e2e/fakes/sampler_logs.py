"""What a diffusion model prints while it samples: a tqdm progress bar line per step.

Replicate's `logs` and Fal.ai's `logs` (with `?logs=1`) carry a model's prints as they are;
the fakes print the bar the way tqdm does, so the app reads the percent from the same text
it gets from a real model (`providers/log_progress.py`).
"""

from __future__ import annotations

#: Steps a fake sampler runs (a few, so a test sees several of them).
STEPS = 8
_BAR_WIDTH = 10


def bar_line(step: int, total: int = STEPS, elapsed_s: float = 0.0) -> str:
    """E.g. ` 50%|█████     | 4/8 [00:01<00:01,  3.20it/s]`."""
    filled = _BAR_WIDTH * step // total
    rate = step / elapsed_s if elapsed_s > 0 else 0.0
    left = (total - step) / rate if rate else 0.0
    return (
        f"{100 * step // total:3d}%|{'█' * filled}{' ' * (_BAR_WIDTH - filled)}| {step}/{total} "
        f"[00:{int(elapsed_s):02d}<00:{int(left):02d}, {rate:5.2f}it/s]"
    )
