"""Fetching missing data files from the official mirrors: checked by MD5, written atomically."""

from __future__ import annotations

import hashlib
import sys
import urllib.error
import urllib.request
from pathlib import Path

from trainlab.data.idx import gunzip_idx
from trainlab.errors import DataError, FileWriteError
from trainlab.fileio import write_bytes_atomically

CHUNK = 1 << 16  # bytes


def fetch(url: str, timeout: float = 30.0) -> bytes:
    """The body at url, with a progress bar on stderr."""
    from tqdm import tqdm

    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - fixed https mirrors
        total = int(response.headers.get("Content-Length") or 0) or None
        parts = []
        with tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            desc=url.rsplit("/", 1)[-1],
            file=sys.stderr,
            disable=None,
            leave=False,
        ) as bar:
            while chunk := response.read(CHUNK):
                parts.append(chunk)
                bar.update(len(chunk))
    return b"".join(parts)


def download_file(name: str, md5: str, mirrors: tuple[str, ...], target: Path, md5_of: str = "content") -> None:
    """Try each mirror for `name`.gz, check its MD5, store the decompressed content at target.

    md5_of: "content" checks the decompressed file (recompressed mirrors still match), "gz" the archive.
    """
    failures = []
    for mirror in mirrors:
        url = f"{mirror}{name}.gz"
        try:
            archive = fetch(url)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = exc if isinstance(exc, urllib.error.HTTPError) else getattr(exc, "reason", exc)
            failures.append(f"{url}: {reason}")  # HTTP errors keep their status: "HTTP Error 404: ..."
            continue
        checked = archive if md5_of == "gz" else None
        try:  # inflated no further than the IDX header declares: a gzip bomb from a mirror is refused, not inflated
            content = gunzip_idx(archive, url, remedy="not stored")
        except DataError as exc:
            failures.append(str(exc))  # "URL: corrupt or truncated gzip file (...)" or "URL: inflates to more ..."
            continue
        digest = hashlib.md5(content if checked is None else checked).hexdigest()  # noqa: S324 - integrity check
        if digest != md5:
            failures.append(f"{url}: MD5 {digest} does not match the expected {md5}")
            continue
        try:
            write_bytes_atomically(target, content)
        except FileWriteError as exc:
            raise DataError(
                f"cannot write {target}: {exc.reason}; free some space or choose another --data-dir"
            ) from None
        return
    raise DataError(
        f"could not download {name} ({'; '.join(failures)}); without internet, put the files in "
        f"{target.parent} (torchvision's layout) or pass --data-dir / set TRAINLAB_DATA_DIR to a copy"
    )
