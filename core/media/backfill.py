"""Make the copies, size and ThumbHash of images stored before they existed: `python -m core.media.backfill`.

Resumable: an image that has them is skipped, so a run stopped halfway (Ctrl-C, a crash)
picks up where it was; running it twice does nothing the second time. The app need not stop:
what it stores meanwhile gets its copies when stored, and a copy still missing is made on its
first request anyway (`MediaStore.file_for`); this only does that work ahead of the requests.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

from core.media.store import ImageRejected, MediaStore, original_name
from core.settings import get_settings

_BAR = 30


@dataclass
class Tally:
    made: int = 0
    had: int = 0
    refused: int = 0


def originals(store: MediaStore) -> list[str]:
    return sorted(p.name for p in store.root.iterdir() if original_name(p.name) == p.name)


def backfill(store: MediaStore, names: list[str]) -> Iterator[tuple[str, str]]:
    """Each image's outcome as it is done: "made", "had" or "refused: <why>"."""
    for name in names:
        try:
            yield name, "made" if store.ensure_derivatives(name) else "had"
        except ImageRejected as exc:  # a file that is no image (any more): left as it is, reported
            yield name, f"refused: {exc}"


def run(store: MediaStore, out: TextIO) -> Tally:
    names = originals(store)
    tally = Tally()
    started = time.monotonic()
    for done, (name, outcome) in enumerate(backfill(store, names), start=1):
        if outcome == "made":
            tally.made += 1
        elif outcome == "had":
            tally.had += 1
        else:
            tally.refused += 1
            out.write(f"\n{name}: {outcome}\n")
        filled = _BAR * done // len(names)
        rate = done / max(time.monotonic() - started, 1e-9)
        out.write(f"\r[{'#' * filled}{'.' * (_BAR - filled)}] {done}/{len(names)} images, {rate:.0f}/s ")
        out.flush()
    out.write(f"\n{tally.made} made, {tally.had} already had their copies, {tally.refused} refused\n")
    return tally


def main() -> None:
    tally = run(MediaStore(get_settings().media_dir), sys.stderr)
    sys.exit(1 if tally.refused else 0)


if __name__ == "__main__":
    main()
