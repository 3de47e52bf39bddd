"""Downloading missing data files: mirrors tried in order, MD5-checked, stored decompressed and atomically.

The mirrors are a local HTTP server on 127.0.0.1; no test reaches the internet.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import http.server
import threading
from pathlib import Path

import pytest
import torch

from trainlab.data import load_dataset
from trainlab.data.builtin import BUILTIN_DATASETS, FASHION_MNIST
from trainlab.errors import DataError

from conftest import write_fashion_layout

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A local server with three folders: good/ (the .gz files), empty/ (404s), corrupt/ (not gzip)."""
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    served = tmp_path / "served"
    source = write_fashion_layout(tmp_path / "source", train_count=100, test_count=20)
    raw = source / "FashionMNIST" / "raw"
    (served / "good").mkdir(parents=True)
    (served / "empty").mkdir()
    (served / "corrupt").mkdir()
    contents = {}
    for name in FILES:
        contents[name] = (raw / name).read_bytes()
        (served / "good" / f"{name}.gz").write_bytes(gzip.compress(contents[name]))
        (served / "corrupt" / f"{name}.gz").write_bytes(b"this is not gzip")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    md5 = {name: hashlib.md5(content).hexdigest() for name, content in contents.items()}  # noqa: S324

    def use(*folders: str, md5_changes: dict[str, str] | None = None) -> dict[str, bytes]:
        spec = dataclasses.replace(
            FASHION_MNIST, mirrors=tuple(f"{base}{folder}/" for folder in folders), md5={**md5, **(md5_changes or {})}
        )
        monkeypatch.setitem(BUILTIN_DATASETS, "fashion-mnist", spec)
        return contents

    yield use
    server.shutdown()
    server.server_close()


def all_files(folder: Path) -> list[str]:
    """Every file under folder, hidden and temporary ones included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_missing_files_are_downloaded_from_the_next_mirror_after_a_404(mirror, tmp_path):
    contents = mirror("empty", "good")
    data_dir = tmp_path / "data"
    data = load_dataset(data_dir=data_dir, download=True)
    raw = data_dir / "FashionMNIST" / "raw"
    assert all_files(raw) == sorted(FILES)  # decompressed, no .gz kept, no temporary files left
    for name in FILES:
        assert (raw / name).read_bytes() == contents[name]
    reference = load_dataset(data_dir=tmp_path / "source", download=False)
    assert torch.equal(data.train.images, reference.train.images)
    assert torch.equal(data.test.labels, reference.test.labels)


def test_downloaded_files_are_used_next_time_without_the_network(mirror, tmp_path):
    mirror("good")
    load_dataset(data_dir=tmp_path / "data", download=True)
    mirror("empty")  # every mirror 404s now
    data = load_dataset(data_dir=tmp_path / "data", download=True)
    assert len(data.train) == 100


def test_only_missing_files_are_downloaded(mirror, tmp_path):
    contents = mirror("good")
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(contents["train-images-idx3-ubyte"]))
    load_dataset(data_dir=tmp_path / "data", download=True)
    assert all_files(raw) == sorted([*FILES[1:], "train-images-idx3-ubyte.gz"])


def test_a_wrong_md5_leaves_no_file_and_names_the_file(mirror, tmp_path):
    mirror("good", md5_changes={"train-images-idx3-ubyte": "0" * 32})
    data_dir = tmp_path / "data"
    with pytest.raises(DataError) as raised:
        load_dataset(data_dir=data_dir, download=True)
    message = str(raised.value)
    assert "train-images-idx3-ubyte" in message
    assert "MD5" in message
    assert "0" * 32 in message
    assert all_files(data_dir) == []  # not the bad file, not a temporary file


def test_a_corrupt_archive_on_one_mirror_falls_back_to_the_next(mirror, tmp_path):
    mirror("corrupt", "good")
    data = load_dataset(data_dir=tmp_path / "data", download=True)
    assert len(data.test) == 20


def test_when_every_mirror_fails_the_error_names_each_url_and_where_to_put_files(mirror, tmp_path):
    mirror("empty", "corrupt")
    data_dir = tmp_path / "data"
    with pytest.raises(DataError) as raised:
        load_dataset(data_dir=data_dir, download=True)
    message = str(raised.value)
    assert "empty/train-images-idx3-ubyte.gz: HTTP Error 404" in message
    assert "corrupt/train-images-idx3-ubyte.gz" in message
    assert str(data_dir / "FashionMNIST" / "raw") in message
    assert "\n" not in message
    assert all_files(data_dir) == []


def test_without_download_and_without_files_the_cli_says_where_to_put_them(tmp_path, run_main):
    data_dir, run_dir = tmp_path / "nothing", tmp_path / "run"
    result = run_main("train", "--no-download", "--data-dir", data_dir, "--run-dir", run_dir, "--epochs", "1")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    expected = data_dir / "FashionMNIST" / "raw" / "train-images-idx3-ubyte"
    assert lines[0] == (
        f"trainlab train: error: fashion-mnist: {expected} (or .gz) not found; put the files there, "
        "point --data-dir or TRAINLAB_DATA_DIR at a copy, or allow downloading"
    )
    assert result.stdout == ""
    assert not run_dir.exists() or all_files(run_dir) == []
    assert not data_dir.exists()


def test_downloaded_files_get_the_usual_permissions_not_private_temp_file_ones(mirror, tmp_path):
    import os

    mirror("good")
    load_dataset(data_dir=tmp_path / "data", download=True)
    umask = os.umask(0)
    os.umask(umask)
    for name in FILES:
        mode = (tmp_path / "data" / "FashionMNIST" / "raw" / name).stat().st_mode & 0o777
        assert mode == 0o666 & ~umask, f"{name}: {oct(mode)}"


def test_a_full_disk_while_writing_a_download_is_one_clear_error_and_leaves_nothing(mirror, tmp_path, monkeypatch):
    import errno
    import os

    from trainlab.data import download
    from trainlab.fileio import atomic_write

    def write_to_a_full_disk(path, content):
        def fail(handle):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        return atomic_write(path, fail)

    mirror("good")
    monkeypatch.setattr(download, "write_bytes_atomically", write_to_a_full_disk)
    data_dir = tmp_path / "data"
    with pytest.raises(DataError) as error:
        load_dataset(data_dir=data_dir)
    assert "No space left on device" in str(error.value) and "--data-dir" in str(error.value)
    assert all_files(data_dir) == []


def test_a_gzip_bomb_from_a_mirror_is_refused_uninflated_naming_its_url_and_the_next_mirror_is_used(
    tmp_path, monkeypatch
):
    import tracemalloc
    import zlib

    from trainlab.data import download

    header = bytes([0, 0, 8, 3]) + b"".join(size.to_bytes(4, "big") for size in (10, 28, 28))
    content = header + bytes(range(256)) * 30 + bytes(10 * 28 * 28 - 256 * 30)
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip container
    bomb = compressor.compress(header) + b"".join(compressor.compress(bytes(2**20)) for _ in range(64))
    bomb += compressor.flush()  # the declared 7,856 bytes, then 64 MB more of zeros, in under 1 MB
    served = {"http://bomb/x.gz": bomb, "http://good/x.gz": gzip.compress(content)}
    monkeypatch.setattr(download, "fetch", lambda url: served[url])
    md5 = hashlib.md5(content).hexdigest()  # noqa: S324

    tracemalloc.start()
    try:
        download.download_file("x", md5, ("http://bomb/", "http://good/"), tmp_path / "out" / "x")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (tmp_path / "out" / "x").read_bytes() == content
    assert peak < 16 * 2**20  # bytes: the 64 MB were never held

    with pytest.raises(DataError) as raised:
        download.download_file("x", md5, ("http://bomb/",), tmp_path / "no" / "x")
    message = str(raised.value)
    assert (
        "http://bomb/x.gz: inflates to more than its IDX header declares (7,856 bytes for shape (10, 28, 28)); "
        "the file is corrupt or a decompression bomb: not stored" in message
    )
    assert "\n" not in message
    assert all_files(tmp_path / "no") == []
