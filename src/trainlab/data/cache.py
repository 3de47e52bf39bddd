"""Decoded images in memory: the eager decode of a set of image files (in worker processes when there are many),
and the cache that keeps the result, a uint8 tensor file next to the images, valid while no listed file changes."""

from __future__ import annotations

import glob
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from trainlab.data.input_styles import RAW, InputStyle
from trainlab.data.workers import PARALLEL_DECODE_MINIMUM, read_in_batches, reader
from trainlab.errors import FileWriteError
from trainlab.fileio import atomic_write, open_regular

CACHE_FOLDER = ".trainlab-cache"  # inside the image directory; hidden, so class-folder scans skip it
CACHE_VERSION = 2  # bump when decoding changes what a file becomes (2: 16-bit and float images scaled)
STALE_NAME = re.compile(r"[0-9a-f]{16}\.pt")  # the key part of a cache file's name
DECODE_CHUNK = 256  # files per worker task


@dataclass
class DecodedImages:
    """The decoded files of a FileSet: images of the readable ones, in order, and the unreadable ones."""

    shape: tuple[int, int, int]  # (C, H, W)
    images: torch.Tensor  # uint8 (readable files, C, H, W)
    bad: list[tuple[int, str]]  # (index in the FileSet, message naming the file)


def decode_files(
    paths: Sequence[str], shape: tuple[int, int, int], indices: Sequence[int], workers: int, style: InputStyle = RAW
) -> tuple[list[int], torch.Tensor, list[tuple[int, str]]]:
    """Decode paths[indices] to uint8 (n, C, H, W) through an input style: (decoded indices, images, failures
    naming the files)."""
    read = reader(shape, style)
    chunks = [list(indices[start : start + DECODE_CHUNK]) for start in range(0, len(indices), DECODE_CHUNK)]
    use_workers = workers if len(indices) >= PARALLEL_DECODE_MINIMUM else 0
    done: list[int] = []
    parts: list[torch.Tensor] = []
    failed: list[tuple[int, str]] = []
    for chunk_done, images, chunk_failed in read_in_batches(paths, read, chunks, use_workers):
        done.extend(chunk_done)
        if chunk_done:
            parts.append(images)
        failed.extend(chunk_failed)
    images = torch.cat(parts) if parts else torch.empty((0, *shape), dtype=torch.uint8)
    return done, images, failed


def cache_key(request: str, paths: list[str], stats: list[tuple[int, int] | None]) -> str:
    """A digest of what decides the decoded pixels: the requested shape and every file's name, size and time."""
    digest = hashlib.sha256(json.dumps([CACHE_VERSION, request]).encode())
    for path, stat in zip(paths, stats, strict=True):
        digest.update(json.dumps([path, stat]).encode())
    return digest.hexdigest()


def cache_file(root: Path, source: Path, request: str, key: str) -> Path:
    """root/.trainlab-cache/<source name>-<source id>-<key>.pt; the source id groups a source's versions."""
    source_id = hashlib.sha256(f"{source.resolve()}|{request}".encode()).hexdigest()[:8]
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in source.name) or "data"
    return root / CACHE_FOLDER / f"{stem}-{source_id}-{key[:16]}.pt"


def read_cache(path: Path) -> DecodedImages | None:
    """The cached decoded images, or None when absent or unreadable (then they are decoded again)."""
    try:
        with open_regular(path) as handle:  # a FIFO planted as a cache file is not waited on
            payload = torch.load(handle, map_location="cpu", weights_only=True)
        if payload.get("version") != CACHE_VERSION:
            return None
        shape = tuple(int(v) for v in payload["shape"])
        images = payload["images"]
        bad = [(int(index), str(message)) for index, message in payload["bad"]]
        if images.dtype != torch.uint8 or tuple(images.shape[1:]) != shape:
            return None
    except Exception:  # noqa: BLE001 - a damaged cache is only a cache: decode again
        return None
    return DecodedImages(shape, images, bad)  # type: ignore[arg-type]


def write_cache(path: Path, decoded: DecodedImages) -> str | None:
    """Store atomically and drop older versions of the same source; else why not (the folder is read-only, ...)."""
    payload = {
        "version": CACHE_VERSION,
        "shape": list(decoded.shape),
        "images": decoded.images.contiguous(),
        "bad": [[index, message] for index, message in decoded.bad],
    }
    if path.parent.is_symlink():  # never written through a link: the cache folder must be trainlab's own
        return f"{path.parent} is a symbolic link"
    if path.parent.exists() and not path.parent.is_dir():
        return f"{path.parent} is a file, not a folder"
    try:
        atomic_write(path, lambda handle: torch.save(payload, handle))
    except FileWriteError as exc:
        if exc.reason in ("Read-only file system", "Permission denied", "Operation not permitted"):
            return f"{path.parent.parent} is read-only"
        return str(exc)
    prefix = path.name.rsplit("-", 1)[0]
    for stale in path.parent.glob(f"{glob.escape(prefix)}-*.pt"):  # only this source's older cache files
        if stale != path and STALE_NAME.fullmatch(stale.name.rsplit("-", 1)[1]) and not stale.is_symlink():
            stale.unlink(missing_ok=True)
    return None
