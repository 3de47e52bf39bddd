"""Plain PNG files: 8-bit gray or RGB, not interlaced, no transparency, rotation or text, every chunk's CRC right.

Such a file needs none of decoding.decode's per-file work (EXIF rotation, transparency, mode conversion, a
header read before the pixels): PIL's PNG decoder alone gives its picture, and its size is in the header. A
server receives thousands of these a second (a 28x28 Fashion-MNIST PNG is about 400 bytes), so
decoding.decode takes this path for them and its own for every other file; anything this module does not
recognise, or PIL fails on, goes decode's way, which names the problem. (torchvision.io.decode_png would be
faster still, but torchvision 0.29 deprecates it, with a warning on every call.)
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from trainlab.config import MAX_IMAGE_PIXELS

SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOUR_TYPES = {0: 1, 2: 3}  # PNG colour type: channels (gray, RGB); palette and alpha types go PIL's way
# ancillary chunks that change no pixel PIL gives (PIL stores them in .info and applies none): text chunks
# (they may hold EXIF or XMP rotation), tRNS (transparency becomes black), eXIf and animation are not among them
HARMLESS_CHUNKS = frozenset((b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"pHYs", b"tIME", b"sBIT"))


@dataclass(frozen=True)
class PlainPng:
    """What a plain PNG's header declares."""

    width: int
    height: int
    channels: int  # 1 gray, 3 RGB


def plain_png(data: bytes) -> PlainPng | None:
    """The header of a plain PNG (see the module's docstring), or None for any other file."""
    if not data.startswith(SIGNATURE) or len(data) < 45:  # signature, IHDR, an IDAT and IEND at the least
        return None
    position, header, seen_data, ended = 8, None, False, False
    try:
        while position < len(data):
            length, kind = struct.unpack_from(">I4s", data, position)
            end = position + 12 + length
            if end > len(data) or ended:
                return None  # truncated, or bytes after IEND
            if zlib.crc32(memoryview(data)[position + 4 : end - 4]) != struct.unpack_from(">I", data, end - 4)[0]:
                return None
            if header is None:
                if kind != b"IHDR" or length != 13:
                    return None
                header = struct.unpack_from(">IIBBBBB", data, position + 8)
            elif kind == b"IDAT":
                seen_data = True
            elif kind == b"IEND":
                ended = True
            elif kind not in HARMLESS_CHUNKS:
                return None
            position = end
    except struct.error:
        return None
    if header is None or not seen_data or not ended:
        return None
    width, height, depth, colour, compression, filtering, interlace = header
    if depth != 8 or colour not in COLOUR_TYPES or (compression, filtering, interlace) != (0, 0, 0):
        return None
    if not 0 < width * height <= MAX_IMAGE_PIXELS:  # PIL's way refuses these, naming the problem
        return None
    return PlainPng(width, height, COLOUR_TYPES[colour])


def plain_png_image(data: bytes, mode: str) -> Any:
    """A plain PNG whose own mode is `mode` (L or RGB) as the PIL image that decoding.decode would give, without
    its per-file work; None when the file is not one (or PIL fails on it), for decode's own way to explain."""
    from PIL import Image

    found = plain_png(data)
    if found is None or found.channels != (1 if mode == "L" else 3):
        return None
    try:
        image = Image.open(io.BytesIO(data), formats=("PNG",))
        image.load()
    except (OSError, ValueError, SyntaxError):
        return None
    return image if image.mode == mode else None
