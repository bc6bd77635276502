"""CPU to make an image's copies, size and ThumbHash: `python -m bench.derivatives` (part of `make bench`).

On a photo-like 1024x1024 PNG (~2.4 MB, `providers.local_render.photo_weight`): decoding,
the WebP copies (`core.media.store.DERIVATIVE_SIDES`) and the ThumbHash, as `MediaStore.save` does
them with Pillow; and, when pyvips is installed (`pip install pyvips pyvips-binary`, not a
dependency), the same copies with libvips, which is how the library was chosen. Last, the
floor under issue 24's 25 ms: the fastest PNG decoder found (Pillow, libvips, and libpng and
libspng when imagecodecs is installed) plus the 768-px WebP alone, the two steps no copy avoids.
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable
from typing import Any

from PIL import Image

from core.media.store import _WEBP, DERIVATIVE_SIDES, _scaled, make_derivatives
from providers.local_render import photo_weight, render_text_to_image

RUNS = 9


def cpu_ms(work: Callable[[], object], runs: int = RUNS) -> float:
    """Median process CPU time of `work` (it runs in this thread: the CPU is its own)."""
    samples = []
    for _ in range(runs):
        started = time.process_time()
        work()
        samples.append((time.process_time() - started) * 1000)
    return statistics.median(samples)


def photo() -> bytes:
    data = photo_weight(render_text_to_image("a harbour at noon", "1:1"), "a harbour at noon")
    with Image.open(io.BytesIO(data)) as image:
        if image.size != (1024, 1024) or len(data) < 1_500_000:
            raise SystemExit(f"the sample is not a real-weight photo: {image.size}, {len(data)} bytes")
    return data


def _vips(data: bytes) -> Callable[[], object] | None:
    try:
        import pyvips  # type: ignore[import-not-found]  # optional: only to compare
    except (ImportError, OSError):
        return None

    def work() -> object:
        largest = pyvips.Image.thumbnail_buffer(data, max(DERIVATIVE_SIDES), size="down").copy_memory()
        return [
            largest.thumbnail_image(side).webpsave_buffer(Q=_WEBP["quality"], effort=_WEBP["method"])
            for side in DERIVATIVE_SIDES
        ]

    return work


def measure() -> list[dict[str, Any]]:
    data = photo()
    decode = cpu_ms(lambda: Image.open(io.BytesIO(data)).load())
    info, copies = make_derivatives(data)
    rows: list[dict[str, Any]] = [
        {
            "metric": "derivatives per image, Pillow (decode + copies + ThumbHash)",
            "value": f"{cpu_ms(lambda: make_derivatives(data)):.1f} ms CPU",
            "target": "<= 25 ms",
            "note": f"1024x1024 PNG of {len(data) / 1e6:.1f} MB; decoding alone {decode:.1f} ms; copies "
            + ", ".join(f"{side} px {len(copy) / 1000:.0f} KB" for side, copy in copies.items())
            + f"; ThumbHash {len(info.thumbhash)} base64 chars",
        }
    ]
    vips = _vips(data)
    rows.append(
        {
            "metric": "derivatives per image, pyvips (decode + copies)",
            "value": f"{cpu_ms(vips):.1f} ms CPU" if vips else "not installed",
            "target": "",
            "note": "libvips from the pyvips-binary wheel, same sizes and WebP settings, no ThumbHash",
        }
    )
    decoders = {"Pillow": decode, **{name: cpu_ms(work) for name, work in _other_decoders(data).items()}}
    with Image.open(io.BytesIO(data)) as image:
        scaled = _scaled(image.convert("RGB"), max(DERIVATIVE_SIDES))  # as the store makes its largest copy
    webp = cpu_ms(lambda: scaled.save(io.BytesIO(), format="WEBP", **_WEBP))
    rows.append(
        {
            "metric": "the floor: the fastest PNG decoder + the 768-px WebP alone",
            "value": f"{min(decoders.values()) + webp:.1f} ms CPU",
            "target": "",
            "note": "decoding alone: "
            + ", ".join(f"{name} {ms:.1f} ms" for name, ms in sorted(decoders.items(), key=lambda kv: kv[1]))
            + f"; the 768-px WebP at method {_WEBP['method']} {webp:.1f} ms"
            + " (before any resize, other copy or ThumbHash)",
        }
    )
    for row in rows:
        row["verdict"] = None
    rows[0]["verdict"] = float(rows[0]["value"].split()[0]) <= 25
    return rows


def _other_decoders(data: bytes) -> dict[str, Callable[[], object]]:
    """PNG decoders other than Pillow's, where installed (none is a dependency): libvips, and
    libpng and libspng through imagecodecs (`pip install imagecodecs`)."""
    found: dict[str, Callable[[], object]] = {}
    try:
        import pyvips  # type: ignore[import-not-found]  # optional: only to compare

        found["libvips"] = lambda: pyvips.Image.new_from_buffer(data, "").copy_memory()
    except (ImportError, OSError):
        pass
    try:
        import imagecodecs  # type: ignore[import-not-found]  # optional: only to compare

        found["libpng"] = lambda: imagecodecs.png_decode(data)
        found["libspng"] = lambda: imagecodecs.spng_decode(data)
    except ImportError:
        pass
    return found


if __name__ == "__main__":
    for row in measure():
        print(f"{row['metric']}: {row['value']} ({row['note']})")
