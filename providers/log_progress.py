"""A fraction from a model's logs: the progress-bar lines samplers print (tqdm's).

Replicate documents no progress field: its predictions' `logs` carry what the model printed,
and a diffusion model prints a tqdm bar per step, e.g. ` 45%|████▌     | 9/20 [00:02<00:02,
4.50it/s]`; Replicate's own JavaScript client reads progress from the last such line
(`parseProgressFromLogs`). Fal.ai's `logs` (with `?logs=1`) are the same prints, one entry
per line.
"""

from __future__ import annotations

import re

#: `<percent>%|<bar>| <done>/<total>` at the start of a line (leading spaces and a `\r` allowed).
_BAR = re.compile(r"^\s*(\d{1,3})%\s*\|[^|]*\|\s*(\d+)/(\d+)")


def percent_from_logs(lines: list[str]) -> float | None:
    """The last progress bar's percent (from its done/total, more precise than its rounded %),
    or None when no line is one."""
    for line in reversed(lines):
        # A terminal bar rewrites its line with `\r`: the last piece is the latest state.
        match = _BAR.match(line.rsplit("\r", 1)[-1])
        if match:
            done, total = int(match.group(2)), int(match.group(3))
            return 100.0 * min(done, total) / total if total else float(match.group(1))
    return None
