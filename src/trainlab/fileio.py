"""Atomic file writes: a temporary file in the same folder, flushed, fsynced, then renamed.

A write that fails (a full disk, a read-only folder, torch's own writer giving up) raises FileWriteError
naming the file, and the file that was there before is left as it was.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from trainlab.errors import FileWriteError, TrainlabError

TORCH_WRITE_FAILURES = ("PytorchStreamWriter", "inline_container", "file write failed")  # torch's RuntimeErrors
TEMPORARY_NAME = re.compile(r"\.(?P<target>.+)\.[0-9a-f]{12}\.tmp")  # what _create_temporary names: .NAME.HEX.tmp


class NotRegularFile(OSError):
    """A path that is a named pipe, a device or a socket: reading one could wait forever for a writer."""


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """A regular file opened for binary reading, as open(path, "rb") but refusing any other kind of file.

    The file is opened without blocking (a FIFO with no writer would hang open() itself), then the open file's
    own type is checked (fstat, so that nothing can swap the path between check and read): a folder raises
    IsADirectoryError, a FIFO, device or socket NotRegularFile, whose strerror says what the path is.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(path))
        if not stat.S_ISREG(mode):
            kind = _special_kind(mode) or "a special file"
            raise NotRegularFile(errno.EINVAL, f"is {kind}, not a regular file", str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_text_file(path: Path, what: str, error: type[TrainlabError], encoding: str = "utf-8") -> str:
    """A text file's contents; a missing or unreadable file, or one that is not a regular file, raises `error`
    naming it as `what` (e.g. "config file")."""
    try:
        with open_regular(path) as handle:
            return handle.read().decode(encoding)
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise error(
            f"{what} {path} {exc.strerror}"
            if isinstance(exc, NotRegularFile | IsADirectoryError)
            else f"{what} {path} cannot be read: {exc.strerror or exc}"
        ) from None
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} cannot be read: {exc}") from None


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call write(handle) on a temporary file and rename it over path: readers see old or new, never half."""
    path = check_output_is_regular_or_new(path)  # a rename over a device or a pipe would replace it
    fd, tmp_name = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except (OSError, RuntimeError) as exc:
        error = write_error(path, exc)  # before the temporary file goes, while the disk is as full as it got
        Path(tmp_name).unlink(missing_ok=True)
        raise error from None
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


def write_error(path: Path, exc: BaseException) -> BaseException:
    """FileWriteError naming path and why, for an OSError or torch's writer failing; other errors as they are."""
    if isinstance(exc, OSError):
        return FileWriteError(path, exc.strerror or str(exc))
    if not any(marker in str(exc) for marker in TORCH_WRITE_FAILURES):
        return exc
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = None
    if free is not None and free < 1 << 16:  # bytes: what is left when a write ran out of room
        return FileWriteError(path, "No space left on device")
    return FileWriteError(path, f"the write failed ({free} bytes free)" if free is not None else "the write failed")


def _create_temporary(path: Path) -> tuple[int, str]:
    """A new file next to path, with the permissions a plain open() gives (0o666 less the umask).

    tempfile.mkstemp would make it 0o600, and the rename would carry that over to data files, metrics and
    exported models that other users and services need to read.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FileWriteError(path, exc.strerror or str(exc)) from None
    while True:
        name = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")  # TEMPORARY_NAME
        try:
            return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), name
        except FileExistsError:
            continue
        except OSError as exc:
            raise FileWriteError(path, exc.strerror or str(exc)) from None


def temporary_target(name: str) -> str | None:
    """The file name an atomic write's temporary file `name` was to replace (None: not such a temporary file)."""
    match = TEMPORARY_NAME.fullmatch(name)
    return match["target"] if match else None


def write_bytes_atomically(path: str | os.PathLike, content: bytes) -> Path:
    """Atomic write of a bytes payload."""
    return atomic_write(path, lambda handle: handle.write(content))


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `path` for libraries that write by file name; renamed over `path` on success."""
    path = check_output_is_regular_or_new(path)
    fd, tmp_name = _create_temporary(path)
    os.close(fd)
    temporary = Path(tmp_name)
    try:
        yield temporary
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except (OSError, RuntimeError) as exc:
        error = write_error(path, exc)
        temporary.unlink(missing_ok=True)
        raise error from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def looks_like_torch_file(head: bytes) -> bool:
    """torch.save's zip format, or its legacy format and plain pickles (first byte 0x80)."""
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def looks_like_safetensors(head: bytes) -> bool:
    """safetensors files start with the 8-byte little-endian size of a JSON header, then '{'."""
    return len(head) > 8 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000


# The first bytes of the kinds of file trainlab writes, so that it replaces only a file of its own kind.
FILE_SIGNATURES: dict[str, Callable[[bytes], bool]] = {
    "PNG image": lambda head: head.startswith(b"\x89PNG\r\n\x1a\n"),
    "PyTorch file": looks_like_torch_file,
    "safetensors file": looks_like_safetensors,
    "ONNX model": lambda head: head[:1] == b"\x08",  # protobuf field 1 (ir_version), varint
}


# What a path that is not a regular file or a folder is, in words (os.stat's file types).
SPECIAL_FILE_KINDS = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
)


def special_file_kind(path: str | os.PathLike) -> str | None:
    """What `path` is when it is a special file (a device, FIFO or socket, through links too); None otherwise.

    Outputs replace only a regular file or make a new one (readers check the same kinds on the file they
    opened: open_regular).
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    return _special_kind(mode)


def _special_kind(mode: int) -> str | None:
    """What a file of os.stat mode `mode` is, in words, when it is a device, FIFO or socket; None otherwise."""
    return next((kind for test, kind in SPECIAL_FILE_KINDS if test(mode)), None)


def check_output_is_regular_or_new(path: str | os.PathLike) -> Path:
    """Refuse an output path that is a special file: renaming over it would replace a device or a pipe."""
    path = Path(path)
    kind = special_file_kind(path)
    if kind is not None:
        linked = " (through a symbolic link)" if path.is_symlink() else ""
        raise TrainlabError(
            f"{path} is {kind}{linked}, not a regular file, so it was not replaced; give the name of a file to write"
        )
    return path


def check_replaceable(path: str | os.PathLike, kind: str) -> Path:
    """Refuse an output path that is a folder, a special file, or an existing file that is not a `kind` (a user's
    other file)."""
    path = check_output_is_regular_or_new(path)
    if path.is_dir():
        raise TrainlabError(f"{path} is a folder; give the name of a file to write")
    if path.is_file() and path.stat().st_size:
        with open(path, "rb") as handle:
            head = handle.read(16)
        if not FILE_SIGNATURES[kind](head):
            raise TrainlabError(
                f"{path} exists and is not a {kind}, so it was not replaced; remove it or choose another file name"
            )
    return path


def read_json_object(path: str | os.PathLike) -> dict[str, Any] | None:
    """The JSON object a record file holds (a run's tracking.json, recipe.json), or None when it is missing,
    unreadable or not an object: records a run wrote for itself, where a damaged one means none."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None
