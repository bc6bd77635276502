"""Stored images and their derivatives: right-sized WebP copies, size and ThumbHash, bad input refused."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from core.media.backfill import backfill, originals, run
from core.media.store import MAX_PIXELS, ImageRejected, MediaStore, make_derivatives
from providers.local_render import photo_weight, render_text_to_image


def _encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **params)
    return out.getvalue()


def _decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.fixture
def store(tmp_path: Path) -> MediaStore:
    return MediaStore(tmp_path / "media")


def test_a_stored_photo_has_webp_copies_at_256_512_and_768_px_its_size_and_a_thumbhash(store: MediaStore) -> None:
    data = photo_weight(render_text_to_image("a harbour", "16:9"), "a harbour")
    url = store.save(data)
    name = url.removeprefix("/media/")
    assert (store.root / name).read_bytes() == data  # the original, byte for byte
    for side, size in ((256, (256, 144)), (512, (512, 288)), (768, (768, 432))):
        copy = _decoded((store.root / f"{name}.w{side}.webp").read_bytes())
        assert (copy.format, copy.size) == ("WEBP", size)
    info = store.info(url)
    assert info is not None and (info.width, info.height) == (1024, 576)
    assert 5 <= len(base64.b64decode(info.thumbhash)) <= 25  # a placeholder in ~25 bytes
    # Another process (another worker) reads the same from disk.
    assert MediaStore(store.root).info(url) == info


def test_a_small_image_is_never_enlarged(store: MediaStore) -> None:
    url = store.save(_encode(Image.new("RGB", (100, 50), "red"), "PNG"))
    for side in (256, 512, 768):
        assert _decoded((store.root / f"{url.removeprefix('/media/')}.w{side}.webp").read_bytes()).size == (100, 50)


def test_undecodable_bytes_are_refused_and_nothing_is_written(store: MediaStore) -> None:
    with pytest.raises(ImageRejected):
        store.save(b"\x89PNG\r\n\x1a\n" + b"garbage" * 100)
    assert list(store.root.iterdir()) == []


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims `width` x `height` (a decompression bomb's first bytes)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_a_decompression_bomb_is_refused_from_its_header(store: MediaStore) -> None:
    assert MAX_PIXELS < 50_000 * 50_000
    with pytest.raises(ImageRejected, match="too large"):
        store.save(_png_header_only(50_000, 50_000))
    with pytest.raises(ImageRejected, match="too large"):  # under Pillow's own alarm, over ours
        store.save(_png_header_only(8_000, 7_000))
    with pytest.raises(ImageRejected, match="too large"):
        make_derivatives(_png_header_only(50_000, 50_000))
    assert list(store.root.iterdir()) == []


def test_an_animated_gif_gets_its_first_frame(store: MediaStore) -> None:
    frames = [Image.new("P", (64, 32), i) for i in (1, 2, 3)]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    url = store.save(data)
    copy = _decoded((store.root / f"{url.removeprefix('/media/')}.w256.webp").read_bytes())
    assert copy.size == (64, 32) and not getattr(copy, "is_animated", False)


def test_a_cmyk_jpeg_gets_rgb_copies_of_its_colours(store: MediaStore) -> None:
    data = _encode(Image.new("CMYK", (300, 200), (0, 255, 255, 0)), "JPEG")  # pure red in ink
    url = store.save(data)
    copy = _decoded((store.root / f"{url.removeprefix('/media/')}.w256.webp").read_bytes()).convert("RGB")
    red, green, blue = copy.getpixel((128, 85))  # type: ignore[misc]
    assert red > 200 and green < 60 and blue < 60


def test_a_16_bit_png_is_scaled_to_8_bits_not_clipped_to_white(store: MediaStore) -> None:
    grey = Image.new("I;16", (64, 64), 0x8000)  # middle grey in 16 bits
    url = store.save(_encode(grey, "PNG"))
    copy = _decoded((store.root / f"{url.removeprefix('/media/')}.w256.webp").read_bytes()).convert("L")
    assert 120 <= copy.getpixel((32, 32)) <= 136  # type: ignore[operator]


def test_an_exif_rotated_jpeg_is_stored_upright_with_its_displayed_size(store: MediaStore) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: turn 90 degrees clockwise to show
    landscape = Image.new("RGB", (400, 200), "blue")
    landscape.paste((255, 255, 0), (0, 0, 100, 200))  # yellow on the stored left: the displayed top
    url = store.save(_encode(landscape, "JPEG", exif=exif.tobytes()))
    info = store.info(url)
    assert info is not None and (info.width, info.height) == (200, 400)
    copy = _decoded((store.root / f"{url.removeprefix('/media/')}.w256.webp").read_bytes()).convert("RGB")
    assert copy.size == (128, 256)
    red, green, blue = copy.getpixel((64, 10))  # type: ignore[misc]
    assert red > 200 and green > 200 and blue < 80


def test_a_missing_copy_is_made_again_on_first_request(store: MediaStore) -> None:
    url = store.save(_encode(Image.new("RGB", (900, 300), "green"), "PNG"))
    name = url.removeprefix("/media/")
    (store.root / f"{name}.w768.webp").unlink()
    path = store.file_for(f"{name}.w768.webp")
    assert path is not None and _decoded(path.read_bytes()).size == (768, 256)


def test_names_that_are_not_ours_are_not_served(store: MediaStore) -> None:
    url = store.save(_encode(Image.new("RGB", (10, 10)), "PNG"))
    name = url.removeprefix("/media/")
    for bad in (f"{name}.json", f"{name}.w300.webp", "../app.db", f"{name[:-4]}.w256.webp"):
        assert store.file_for(bad) is None


def test_the_backfill_makes_missing_copies_once_and_resumes(store: MediaStore) -> None:
    urls = [store.save(_encode(Image.new("RGB", (600, 400), colour), "PNG")) for colour in ("red", "blue", "green")]
    for url in urls:  # as stored before copies existed
        name = url.removeprefix("/media/")
        for leftover in store.root.glob(f"{name}.*"):
            leftover.unlink()
    (store.root / ("f" * 64 + ".png")).write_bytes(b"not an image")
    fresh = MediaStore(store.root)  # another process: nothing remembered
    first = list(backfill(fresh, originals(fresh)[:2]))  # stopped after two
    assert [outcome for _, outcome in first] == ["made", "made"]
    out = io.StringIO()
    tally = run(MediaStore(store.root), out)
    assert (tally.made, tally.had, tally.refused) == (1, 2, 1)
    assert "4/4 images" in out.getvalue() and "refused" in out.getvalue()
    for url in urls:
        info = fresh.info(url)
        assert info is not None and (info.width, info.height) == (600, 400)
    assert run(MediaStore(store.root), io.StringIO()).made == 0
