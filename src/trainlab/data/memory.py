"""The in-memory data path: uint8 tensors on the training device, batches by index slicing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass
class ImageData:
    """A labelled image set held as one uint8 tensor (N, C, H, W) and int64 labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def to(self, device: torch.device | str) -> ImageData:
        return ImageData(self.images.to(device), self.labels.to(device), self.classes)

    def subset(self, count: int) -> ImageData:
        """The first `count` samples (for quick runs and tests)."""
        return ImageData(self.images[:count], self.labels[:count], self.classes)


def epoch_order(size: int, epoch: int, seed: int, shuffle: bool, device: torch.device | str = "cpu") -> torch.Tensor | None:
    """The sample order of one epoch: a seeded permutation, or None for the file order.

    The permutation depends only on (seed, epoch), so a resumed run sees exactly the same batches.
    """
    if not shuffle:
        return None
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(size, generator=generator).to(device)


class BatchLoader:
    """Iterates over (images uint8, labels) batches by slicing a (shuffled) index; no per-sample work."""

    def __init__(self, data: ImageData, batch_size: int, shuffle: bool = False, seed: int = 0):
        self.data = data
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed

    def __len__(self) -> int:
        return -(-len(self.data) // self.batch_size)

    def batches(self, epoch: int = 0, start_batch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of `epoch`, starting at batch number `start_batch` (for mid-epoch resume)."""
        order = epoch_order(len(self.data), epoch, self.seed, self.shuffle, self.data.images.device)
        for start in range(start_batch * self.batch_size, len(self.data), self.batch_size):
            stop = start + self.batch_size
            if order is None:
                yield self.data.images[start:stop], self.data.labels[start:stop]
            else:
                index = order[start:stop]
                yield self.data.images[index], self.data.labels[index]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.batches()


def stratified_split(data: ImageData, fraction: float, seed: int) -> tuple[ImageData, ImageData]:
    """(train, validation): `fraction` of each class held out, chosen by a seeded permutation."""
    generator = torch.Generator().manual_seed(seed + 7919)
    labels = data.labels.cpu()
    held_out = []
    for label in labels.unique(sorted=True):
        members = (labels == label).nonzero().view(-1)
        count = int(round(fraction * members.numel()))
        held_out.append(members[torch.randperm(members.numel(), generator=generator)[:count]])
    val_index = torch.cat(held_out).sort().values
    keep = torch.ones(len(data), dtype=torch.bool)
    keep[val_index] = False
    train_index = keep.nonzero().view(-1)
    device = data.images.device
    pick = lambda index: ImageData(data.images[index.to(device)], data.labels[index.to(device)], data.classes)  # noqa: E731
    return pick(train_index), pick(val_index)


def channel_stats(data: ImageData) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of the pixels scaled to [0, 1]."""
    pixels = data.images.transpose(0, 1).reshape(data.images.shape[1], -1).double().div(255)
    return tuple(pixels.mean(1).tolist()), tuple(pixels.std(1).tolist())
