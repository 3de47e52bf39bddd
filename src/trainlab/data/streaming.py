"""The larger-than-memory path: images decoded from their files in DataLoader workers, batch by batch.

FileBackedImages stands in for the uint8 (N, C, H, W) tensor of an ImageData: indexing it decodes those files,
and `select` makes a subset without decoding anything. StreamingLoader yields exactly the batches that
BatchLoader yields for the same data, seed and epoch, so both paths train identically.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterator, Sequence

import torch

from trainlab.data.cache import decode_files
from trainlab.data.input_styles import RAW, InputStyle
from trainlab.data.memory import BatchLoader, ImageData, epoch_order
from trainlab.data.workers import read_in_batches, reader
from trainlab.errors import DataError

DEFAULT_MEMORY_FRACTION = 0.5  # of physical memory, for the decoded data set


def physical_memory_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def memory_budget_bytes(budget_mb: float | None) -> int:
    """--memory-budget-mb in bytes, else half of physical memory (4 GiB where that cannot be read)."""
    if budget_mb is not None:
        return int(budget_mb * 1024 * 1024)
    physical = physical_memory_bytes()
    return int(physical * DEFAULT_MEMORY_FRACTION) if physical else 4 << 30


class FileBackedImages:
    """File-backed uint8 images (N, C, H, W): indexing decodes the files, in workers for large requests."""

    dtype = torch.uint8

    def __init__(
        self,
        paths: Sequence[str],
        shape: tuple[int, int, int],
        workers: int,
        device: torch.device | str = "cpu",
        style: InputStyle = RAW,
    ):
        self.paths = list(paths)
        self.image_shape = tuple(shape)
        self.workers = workers
        self.device = torch.device(device)
        self.style = style

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.paths), *self.image_shape))

    def __len__(self) -> int:
        return len(self.paths)

    def positions(self, index: int | slice | torch.Tensor | Sequence[int]) -> list[int]:
        if isinstance(index, slice):
            return list(range(len(self.paths)))[index]
        if isinstance(index, torch.Tensor):
            if index.dtype == torch.bool:
                index = index.nonzero().view(-1)
            return [int(i) for i in index.view(-1).tolist()]
        return [int(i) for i in index]

    def __getitem__(self, index: int | slice | torch.Tensor | Sequence[int]) -> torch.Tensor:
        single = isinstance(index, numbers.Integral) or (isinstance(index, torch.Tensor) and index.dim() == 0)
        positions = [int(index)] if single else self.positions(index)
        images = self.decode(positions)
        return images[0] if single else images

    def decode(self, positions: Sequence[int]) -> torch.Tensor:
        """The images at these positions, decoded, on this object's device; a failure stops with its name."""
        positions = [p + len(self.paths) if p < 0 else p for p in positions]
        _, images, failed = decode_files(self.paths, self.image_shape, positions, self.workers, self.style)
        raise_if_failed(failed)
        return images.to(self.device)

    def select(self, index: torch.Tensor | Sequence[int]) -> FileBackedImages:
        """A subset, without decoding anything."""
        paths = [self.paths[i] for i in self.positions(index)]
        return FileBackedImages(paths, self.image_shape, self.workers, self.device, self.style)

    def to(self, device: torch.device | str) -> FileBackedImages:
        return FileBackedImages(self.paths, self.image_shape, self.workers, device, self.style)

    def __repr__(self) -> str:
        return f"FileBackedImages({len(self.paths)} files, shape={tuple(self.shape)}, workers={self.workers})"


def raise_if_failed(failed: list[tuple[int, str]]) -> None:
    if failed:
        raise DataError(
            f"{failed[0][1]} (while streaming; the file changed or is damaged: fix or remove it and run again)"
        )


def is_streaming(data: ImageData) -> bool:
    return isinstance(data.images, FileBackedImages)


class StreamingLoader(BatchLoader):
    """BatchLoader's batches, decoded from the files by DataLoader workers while the model trains."""

    def __init__(
        self, data: ImageData, batch_size: int, shuffle: bool = False, seed: int = 0, shard: tuple[int, int] = (0, 1)
    ):
        if not is_streaming(data):
            raise TypeError("StreamingLoader needs file-backed ImageData (FileBackedImages images)")
        super().__init__(data, batch_size, shuffle, seed, shard)
        self.files: FileBackedImages = data.images  # type: ignore[assignment]

    def batches(self, epoch: int = 0, start_batch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of `epoch` from batch `start_batch` on: the same samples, in the same order, as BatchLoader."""
        size = len(self.data)
        order = epoch_order(size, epoch, self.seed, self.shuffle)
        order_list = order.tolist() if order is not None else list(range(size))
        chunks = [order_list[start:stop] for start, stop in self.ranges()[start_batch:]]
        read = reader(self.files.image_shape, self.files.style)
        labels = self.data.labels
        for indices, images, failed in read_in_batches(self.files.paths, read, chunks, self.files.workers):
            raise_if_failed(failed)
            index = torch.tensor(indices, dtype=torch.long, device=labels.device)
            yield images.to(self.files.device, non_blocking=True), labels[index]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.batches()
