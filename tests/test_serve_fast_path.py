"""The server's hot path: plain PNGs decoded without PIL's per-file work (data/plain_png.py) to exactly PIL's
pixels; any other PNG still goes PIL's whole way."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainlab.data.decoding import decode
from trainlab.data.plain_png import PlainPng, plain_png


def png(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def noise(height: int, width: int, channels: int, seed: int) -> Image.Image:
    """Noise on a gradient: rows that PIL's encoder filters in several ways (none, sub, up, average, Paeth)."""
    rng = np.random.default_rng(seed)
    gradient = np.add.outer(np.arange(height), np.arange(width)) * 3
    pixels = (gradient[..., None] + rng.integers(0, 40, (height, width, channels))) % 256
    pixels = pixels.astype(np.uint8)
    return Image.fromarray(pixels[..., 0] if channels == 1 else pixels)


PLAIN = {  # name: (PNG bytes, mode, width x height)
    "28x28 gray": (png(noise(28, 28, 1, 0)), "L", (28, 28)),
    "1x1 gray": (png(noise(1, 1, 1, 1)), "L", (1, 1)),
    "300x7 gray, not compressed": (png(noise(7, 300, 1, 2), compress_level=0), "L", (300, 7)),
    "100x60 RGB": (png(noise(60, 100, 3, 3)), "RGB", (100, 60)),
    "32x32 RGB with a dpi": (png(noise(32, 32, 3, 4), dpi=(300, 300)), "RGB", (32, 32)),
}


def path_decode(data: bytes, mode: str, tmp_path: Path) -> Image.Image:
    """The same file decoded the way a path is: PIL's whole way (the plain path takes bytes only)."""
    path = tmp_path / "picture.png"
    path.write_bytes(data)
    return decode(path, mode)


@pytest.mark.parametrize("name", PLAIN)
def test_a_plain_png_decodes_from_its_header_to_exactly_the_pixels_of_pils_whole_way(name, tmp_path):
    data, mode, size = PLAIN[name]
    assert plain_png(data) == PlainPng(*size, 1 if mode == "L" else 3)

    fast, whole = decode(data, mode), path_decode(data, mode, tmp_path)

    assert (fast.mode, fast.size) == (whole.mode, whole.size) == (mode, size)
    assert np.array_equal(np.asarray(fast), np.asarray(whole))


def exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to show
    return png(noise(10, 20, 1, 5), exif=exif.tobytes())


def with_text(key: str, value: str) -> bytes:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(key, value)
    return png(noise(8, 8, 1, 6), pnginfo=info)


def corrupted_crc() -> bytes:
    data = bytearray(png(noise(8, 8, 1, 7)))
    data[-20] ^= 0xFF  # inside the IDAT chunk's CRC or data: the stored CRC no longer matches
    return bytes(data)


def chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


NOT_PLAIN = {  # name: PNG bytes that must go PIL's whole way
    "transparent gray (tRNS)": png(noise(8, 8, 1, 8), transparency=int(np.asarray(noise(8, 8, 1, 8))[0, 0])),
    "an EXIF rotation (eXIf)": exif_rotated(),
    "a text chunk (it may hold XMP rotation)": with_text("XML:com.adobe.xmp", "<x/>"),
    "16-bit gray": png(Image.fromarray((np.arange(64).reshape(8, 8) * 1000).astype(np.uint16))),
    "palette": png(noise(8, 8, 3, 9).convert("P")),
    "gray with alpha": png(noise(8, 8, 1, 10).convert("LA")),
    "a wrong CRC": corrupted_crc(),
    "bytes after IEND": png(noise(8, 8, 1, 11)) + b"trailing",
    "truncated": png(noise(8, 8, 1, 12))[:-15],
    "a chunk of unknown kind": png(noise(8, 8, 1, 13))[:33] + chunk(b"zzZz", b"x") + png(noise(8, 8, 1, 13))[33:],
    "not a PNG": b"GIF89a" + bytes(60),
}


@pytest.mark.parametrize("name", NOT_PLAIN)
def test_a_png_that_is_not_plain_goes_pils_whole_way(name):
    assert plain_png(NOT_PLAIN[name]) is None


def test_pils_whole_way_still_turns_a_png_with_an_exif_rotation_upright():
    assert decode(NOT_PLAIN["an EXIF rotation (eXIf)"], "L").size == (10, 20)  # stored 20x10
