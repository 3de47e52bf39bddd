"""Many image files read in DataLoader worker processes, batch by batch: by the eager decode (cache.py), the
streamed batches (streaming.py) and the header scan of a file set (file_datasets.py).

A file that fails is reported by name rather than stopping its worker with a traceback; the workers leave
SIGINT and SIGTERM to the main process, which finishes its step and writes its checkpoint.
"""

from __future__ import annotations

import functools
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from trainlab.data.decoding import import_decoders, load_image
from trainlab.data.input_styles import DataLook, InputStyle
from trainlab.errors import DataError

PARALLEL_DECODE_MINIMUM = 2048  # files; fewer are decoded in this process (starting workers costs more)


@dataclass(frozen=True)
class InputShape:
    """The decoded image shape and the training images' look; a picklable stand-in for Preprocessing in
    worker processes."""

    channels: int
    height: int
    width: int
    look: DataLook | None = None
    resize: int | None = None  # pixels: shorter side, then centre-cropped to height x width


def reader(shape: tuple[int, int, int], style: InputStyle) -> functools.partial:
    """load_image for files decoded to `shape` through `style`."""
    return functools.partial(load_image, preprocessing=InputShape(*shape, style.look, style.resize), style=style.name)


def default_workers() -> int:
    """Decoding processes: one per CPU, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


class FileBatches(torch.utils.data.Dataset):
    """Reads a batch of files per item (in DataLoader workers): returns (done indices, values, failures).

    One item is a whole batch so that workers hand back stacked tensors and the main process does no
    per-sample work; a file that fails is reported by name instead of stopping the worker with a traceback.
    """

    def __init__(self, paths: Sequence[str], read: Callable[[str], Any]):
        self.paths = paths
        self.read = read

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, indices: list[int]) -> tuple[list[int], Any, list[tuple[int, str]]]:
        done, values, failed = [], [], []
        for index in indices:
            try:
                values.append(self.read(self.paths[index]))
                done.append(index)
            except DataError as exc:
                failed.append((index, str(exc)))
        if values and isinstance(values[0], torch.Tensor):
            values = torch.stack(values)
        return done, values, failed


def _unchanged(item: Any) -> Any:
    return item


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader worker_init_fn: workers ignore SIGINT and SIGTERM; the main process stops them.

    A signal to the whole process group (Ctrl-C, `kill -TERM -PGID`, SLURM's scancel, systemd) reaches the
    workers too; were they to die of it, the main process would fail with "DataLoader worker ... killed by
    signal" instead of finishing its step, writing its checkpoint and shutting the workers down itself.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def read_in_batches(
    paths: Sequence[str], read: Callable[[str], Any], batches: Sequence[list[int]], workers: int = 0
) -> Iterator[tuple[list[int], Any, list[tuple[int, str]]]]:
    """FileBatches over `batches` (lists of indices into paths), in order, with `workers` processes."""
    workers = min(workers, len(batches))
    if workers:
        # PIL once here, before the workers fork, rather than once in every worker; torchvision only in a worker
        # that resizes a picture: files at the model's size (the usual folder) never pay its import
        import_decoders(resizing=False)
    loader = torch.utils.data.DataLoader(
        FileBatches(paths, read),
        sampler=batches,
        batch_size=None,
        num_workers=workers,
        collate_fn=_unchanged,
        prefetch_factor=2 if workers else None,
        persistent_workers=False,
        worker_init_fn=ignore_stop_signals,
        generator=torch.Generator(),  # its seed draw must not advance the global RNG (augmentation, dropout)
    )
    yield from loader
