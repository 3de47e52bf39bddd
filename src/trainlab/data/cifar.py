"""CIFAR-10 in torchvision's layout (DIR/cifar-10-batches-py/): python-pickle batches of 32x32 RGB images.

The batches are pickles, and unpickling can run code; they are read with an unpickler that only builds
numpy arrays, so a tampered file fails with a DataError instead of executing anything.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
import urllib.error
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainlab.data.memory import ImageData
from trainlab.datasets_registry import BUILTINS
from trainlab.errors import DataError
from trainlab.fileio import open_regular, write_bytes_atomically

FOLDER = "cifar-10-batches-py"
CLASSES = BUILTINS["cifar10"].classes
TRAIN_BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5")
TEST_BATCHES = ("test_batch",)
ARCHIVE_URLS = ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",)
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"  # of the .tar.gz, as torchvision checks it


def _numpy_reconstruct() -> Any:
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


def _empty_bytes(*args: Any) -> bytes:
    """bytes() for the unpickler: only the empty value, never bytes(n) (which would allocate n bytes)."""
    if args:
        raise pickle.UnpicklingError("refusing to call bytes() with arguments: a CIFAR batch holds only arrays")
    return b""


class ArrayUnpickler(pickle.Unpickler):
    """Builds dicts, lists, strings and numpy arrays; refuses every other class or function."""

    def find_class(self, module: str, name: str) -> Any:
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return _numpy_reconstruct()
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if module in ("builtins", "__builtin__") and name == "bytes":  # how protocol 2 pickles b"" (empty arrays)
            return _empty_bytes
        if module == "_codecs" and name == "encode":  # how Python 3 pickles bytes at protocol 2
            import _codecs

            return _codecs.encode
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR batch holds only arrays")


def read_batch(path: Path) -> dict[str, Any]:
    """One pickled batch as a dict with str keys; errors name the file."""
    try:
        with open_regular(path) as handle:  # a FIFO or device is refused by name, not waited on
            content = handle.read()
    except FileNotFoundError:
        raise DataError(f"{path}: not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        batch = ArrayUnpickler(io.BytesIO(content), encoding="latin1").load()
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a damaged or foreign file
        raise DataError(f"{path}: not a CIFAR-10 batch file ({type(exc).__name__}: {exc})") from None
    if not isinstance(batch, dict):
        raise DataError(f"{path}: not a CIFAR-10 batch file (holds a {type(batch).__name__})")
    return {key.decode("latin1") if isinstance(key, bytes) else key: value for key, value in batch.items()}


def read_batches(paths: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 from batch files, checked."""
    images, labels = [], []
    for path in paths:
        batch = read_batch(path)
        data, batch_labels = batch.get("data"), batch.get("labels")
        if not isinstance(data, np.ndarray) or batch_labels is None:
            raise DataError(f"{path}: not a CIFAR-10 batch file (no 'data' array and 'labels' list)")
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise DataError(f"{path}: 'data' is {data.dtype} {data.shape}; expected uint8 (N, 3072)")
        if data.shape[0] == 0:
            raise DataError(
                f"{path}: holds no images; delete {path.parent} and extract cifar-10-python.tar.gz "
                "again (or allow downloading)"
            )
        batch_labels = np.asarray(batch_labels, dtype=np.int64)
        if batch_labels.shape != (data.shape[0],):
            raise DataError(f"{path}: {data.shape[0]} images but {batch_labels.size} labels")
        if batch_labels.size and (batch_labels.min() < 0 or batch_labels.max() >= len(CLASSES)):
            raise DataError(f"{path}: labels outside 0-{len(CLASSES) - 1}")
        # each row holds the red, green, then blue plane, each 32 rows of 32 pixels
        images.append(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()))
        labels.append(torch.from_numpy(batch_labels))
    return torch.cat(images), torch.cat(labels)


def load_cifar10(data_dir: Path, split: str, download: bool) -> ImageData:
    """One split ("train" or "test") of CIFAR-10 from DIR/cifar-10-batches-py, downloading when allowed."""
    folder = data_dir / FOLDER
    names = TRAIN_BATCHES if split == "train" else TEST_BATCHES
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        if not download:
            raise DataError(
                f"cifar10: {folder / missing[0]} not found; put the extracted cifar-10-python.tar.gz there "
                "(torchvision's layout), point --data-dir or TRAINLAB_DATA_DIR at a copy, or allow downloading"
            )
        download_cifar10(data_dir)
    images, labels = read_batches([folder / name for name in names])
    return ImageData(images, labels, CLASSES)


def download_cifar10(data_dir: Path) -> None:
    """Fetch the archive, check its MD5, and extract only the batch files, each written atomically."""
    from trainlab.data.download import fetch

    failures = []
    md5 = ARCHIVE_MD5
    for url in ARCHIVE_URLS:
        try:
            archive = fetch(url)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            failures.append(f"{url}: {exc if isinstance(exc, urllib.error.HTTPError) else getattr(exc, 'reason', exc)}")
            continue
        digest = hashlib.md5(archive).hexdigest()  # noqa: S324 - integrity check, not security
        if digest != md5:
            failures.append(f"{url}: MD5 {digest} does not match the expected {md5}")
            continue
        extract_batches(archive, data_dir / FOLDER, source=url)
        return
    raise DataError(
        f"could not download CIFAR-10 ({'; '.join(failures)}); without internet, extract cifar-10-python.tar.gz "
        f"into {data_dir} (giving {data_dir / FOLDER}) or pass --data-dir / set TRAINLAB_DATA_DIR to a copy"
    )


def extract_batches(archive: bytes, folder: Path, source: str) -> None:
    """Write the known member files of the archive into folder; nothing else in it is touched."""
    wanted = {f"{FOLDER}/{name}" for name in (*TRAIN_BATCHES, *TEST_BATCHES, "batches.meta")}
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            for member in tar.getmembers():
                if member.name in wanted and member.isfile():
                    handle = tar.extractfile(member)
                    if handle is not None:
                        write_bytes_atomically(folder / Path(member.name).name, handle.read())
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{source}: damaged archive ({exc})") from None
