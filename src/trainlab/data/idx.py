"""Reading IDX files (the MNIST family's format), checked, into uint8 tensors."""

from __future__ import annotations

import gzip
import io
import math
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from trainlab.errors import DataError
from trainlab.fileio import open_regular

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
UNSIGNED_BYTE = 0x08  # the IDX type code of both magics above
MAX_IDX_BYTES = 2 * 2**30  # bytes; a .gz inflating to more is refused (EMNIST, the largest IDX set, is ~0.7 GB)


def read_bytes(path: Path) -> bytes:
    """A file's content, gunzipped when the name ends in .gz; corrupt archives name the file.

    A .gz is inflated piece by piece and no further than its IDX header declares (at most MAX_IDX_BYTES),
    so a small archive that inflates to gigabytes (a gzip bomb) is refused before it fills the memory.
    """
    try:
        with open_regular(path) as handle:  # a FIFO or device is refused by name, not waited on
            return handle.read() if path.suffix != ".gz" else gunzip_idx(handle, str(path))
    except OSError as exc:  # the file itself cannot be opened
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def gunzip_idx(archive: bytes | BinaryIO, source: str, remedy: str = "delete it and download it again") -> bytes:
    """A gzip archive (bytes or a binary file) inflated piece by piece, no further than its IDX header declares.

    Errors are one DataError naming source and ending with remedy: a corrupt archive, or one that inflates past
    its header's sizes (a gzip bomb), is refused without holding more than the declared bytes.
    """
    compressed = io.BytesIO(archive) if isinstance(archive, (bytes, bytearray, memoryview)) else archive
    try:
        with gzip.GzipFile(fileobj=compressed, mode="rb") as stream:
            return _read_declared(stream, source, remedy)
    except OSError as exc:
        if exc.errno is not None:  # the archive's file cannot be read
            raise DataError(f"{source}: cannot be read ({exc.strerror or exc})") from None
        raise DataError(f"{source}: corrupt or truncated gzip file ({exc}); {remedy}") from None
    except (EOFError, zlib.error) as exc:
        raise DataError(f"{source}: corrupt or truncated gzip file ({exc}); {remedy}") from None


def _read_declared(stream: BinaryIO, source: str, remedy: str) -> bytes:
    """The IDX content of a decompressing stream: the header, then as many bytes as it declares (and 1 more)."""
    head = stream.read(4)
    if len(head) < 4 or head[:2] != b"\0\0" or head[2] != UNSIGNED_BYTE:
        return head  # not an IDX file of bytes: parse_idx names the problem from these bytes
    ndim = head[3]
    head += stream.read(4 * ndim)
    if len(head) < 4 + 4 * ndim:
        return head
    shape = [int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    declared = len(head) + math.prod(shape)
    if declared > MAX_IDX_BYTES:
        raise DataError(
            f"{source}: IDX header declares shape {tuple(shape)} ({declared:,} bytes), more than the "
            f"{MAX_IDX_BYTES:,} bytes trainlab reads; the file is corrupt or not a data set for it"
        )
    body = stream.read(declared - len(head) + 1)  # one byte more than declared tells a file that holds more
    if len(head) + len(body) > declared:
        raise DataError(
            f"{source}: inflates to more than its IDX header declares ({declared:,} bytes for shape "
            f"{tuple(shape)}); the file is corrupt or a decompression bomb: {remedy}"
        )
    return head + body


def parse_idx(content: bytes, expected_magic: int, source: str) -> torch.Tensor:
    """An IDX payload as a uint8 tensor, after checking its magic number and declared sizes."""
    if len(content) == 0:
        raise DataError(f"{source}: file is empty")
    if len(content) < 4:
        raise DataError(f"{source}: too short to be an IDX file ({len(content)} bytes)")
    magic = int.from_bytes(content[:4], "big")
    if magic != expected_magic:
        kind = "images" if expected_magic == IMAGES_MAGIC else "labels"
        raise DataError(
            f"{source}: wrong IDX magic number 0x{magic:08x} (expected 0x{expected_magic:08x} for {kind}); "
            "is this the right file?"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(content) < header:
        raise DataError(f"{source}: truncated IDX header")
    shape = tuple(int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(shape) if shape else 0
    actual = len(content) - header
    if actual != expected:
        raise DataError(
            f"{source}: IDX header declares shape {shape} ({expected} bytes) but the file holds {actual} bytes; "
            "the file is truncated or corrupt"
        )
    if ndim == 3 and (shape[1] == 0 or shape[2] == 0):
        raise DataError(f"{source}: images of size {shape[1]}x{shape[2]}")
    array = np.frombuffer(content, dtype=np.uint8, offset=header).reshape(shape)
    return torch.from_numpy(array.copy())


def read_idx_pair(images_path: Path, labels_path: Path, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 1, H, W) uint8 and labels (N,) int64 from two IDX files, checked against each other."""
    images = parse_idx(read_bytes(images_path), IMAGES_MAGIC, str(images_path))
    labels = parse_idx(read_bytes(labels_path), LABELS_MAGIC, str(labels_path))
    if images.shape[0] == 0:
        raise DataError(
            f"{images_path}: holds no images (its IDX header declares 0); delete it and download it "
            "again, or point --data-dir at a complete copy"
        )
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{images_path}: holds {images.shape[0]} images but {labels_path} holds {labels.shape[0]} labels; "
            "the two files do not belong together"
        )
    if labels.numel() and int(labels.max()) >= num_classes:
        bad = int((labels >= num_classes).nonzero()[0, 0])
        raise DataError(f"{labels_path}: label {int(labels[bad])} at index {bad} is out of range 0-{num_classes - 1}")
    return images.unsqueeze(1), labels.long()
