"""The in-memory data path: uint8 tensors on the training device, batches by index slicing."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from trainlab.data import showing


@dataclass
class ImageData:
    """A labelled image set held as one uint8 tensor (N, C, H, W) and int64 labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    names: tuple[str, ...] | None = None  # csv/folder: each image's file, relative to its folder (review, relabel)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __repr__(self) -> str:
        return showing.image_data_repr(self)  # sizes, shape and classes: never the pixels

    def _repr_png_(self) -> bytes | None:
        """The tutorial's 3x3 grid of samples titled with their classes (a notebook shows it)."""
        return showing.grid_png(self)

    def _repr_html_(self) -> str:
        return showing.splits_html({"images": self})

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def to(self, device: torch.device | str) -> ImageData:
        return ImageData(self.images.to(device), self.labels.to(device), self.classes, self.names)

    def subset(self, count: int) -> ImageData:
        """The first `count` samples (for quick runs and tests)."""
        if not isinstance(self.images, torch.Tensor):
            return self.select(torch.arange(min(count, len(self))))
        names = self.names[:count] if self.names is not None else None
        return ImageData(self.images[:count], self.labels[:count], self.classes, names)

    def select(self, index: torch.Tensor) -> ImageData:
        """The samples at `index`; file-backed images (see data.streaming) are not decoded."""
        if isinstance(self.images, torch.Tensor):
            images = self.images[index.to(self.images.device)]
        else:
            images = self.images.select(index)
        names = tuple(self.names[i] for i in index.tolist()) if self.names is not None else None
        return ImageData(images, self.labels[index.to(self.labels.device)], self.classes, names)


def epoch_order(
    size: int, epoch: int, seed: int, shuffle: bool, device: torch.device | str = "cpu"
) -> torch.Tensor | None:
    """The sample order of one epoch: a seeded permutation, or None for the file order.

    The permutation depends only on (seed, epoch), so a resumed run sees exactly the same batches.
    """
    if not shuffle:
        return None
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(size, generator=generator).to(device)


def shard_ranges(size: int, batch_size: int, rank: int = 0, world: int = 1) -> list[tuple[int, int]]:
    """This process's batches of one epoch, as (start, stop) positions in the epoch's sample order.

    Each global batch (batch_size x world consecutive samples) is split in rank order, so N processes see
    what one process with an N-times larger batch sees. The last, shorter global batch is split as evenly
    as it goes; when fewer samples than processes are left, they wait for the next epoch's order (every
    process must take the same number of steps).
    """
    if world == 1:
        return [(start, min(start + batch_size, size)) for start in range(0, size, batch_size)]
    global_batch = batch_size * world
    full, rest = divmod(size, global_batch)
    ranges = [(g * global_batch + rank * batch_size, g * global_batch + (rank + 1) * batch_size) for g in range(full)]
    if rest >= world:
        share, extra = divmod(rest, world)
        start = full * global_batch + rank * share + min(rank, extra)
        ranges.append((start, start + share + (1 if rank < extra else 0)))
    return ranges


def eval_range(size: int, rank: int, world: int) -> tuple[int, int]:
    """This process's contiguous part of an evaluation set: every sample in exactly one part, no padding."""
    return size * rank // world, size * (rank + 1) // world


class BatchLoader:
    """Iterates over (images uint8, labels) batches by slicing a (shuffled) index; no per-sample work.

    shard=(rank, world): this process's part of each global batch of batch_size x world samples (see
    shard_ranges); every process takes the same number of batches.
    """

    def __init__(
        self, data: ImageData, batch_size: int, shuffle: bool = False, seed: int = 0, shard: tuple[int, int] = (0, 1)
    ):
        self.data = data
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.shard = shard

    def ranges(self) -> list[tuple[int, int]]:
        """(start, stop) positions of this process's batches in the epoch's sample order."""
        return shard_ranges(len(self.data), self.batch_size, *self.shard)

    def __len__(self) -> int:
        if self.shard[1] == 1:
            return -(-len(self.data) // self.batch_size)
        return len(self.ranges())

    def batches(self, epoch: int = 0, start_batch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of `epoch`, starting at batch number `start_batch` (for mid-epoch resume)."""
        order = epoch_order(len(self.data), epoch, self.seed, self.shuffle, self.data.images.device)
        for start, stop in self.ranges()[start_batch:]:
            if order is None:
                yield self.data.images[start:stop], self.data.labels[start:stop]
            else:
                index = order[start:stop]
                yield self.data.images[index], self.data.labels[index]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.batches()


def held_out_count(count: int, fraction: float) -> int:
    """How many of a class's `count` images a stratified split of `fraction` holds out."""
    return int(round(fraction * count))


def stratified_indices(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, held out) sorted indices: `fraction` of each class held out, chosen by a permutation seeded with seed."""
    generator = torch.Generator().manual_seed(seed)
    labels = labels.cpu()
    held_out = [torch.empty(0, dtype=torch.long)]
    for label in labels.unique(sorted=True):
        members = (labels == label).nonzero().view(-1)
        count = held_out_count(members.numel(), fraction)
        held_out.append(members[torch.randperm(members.numel(), generator=generator)[:count]])
    held_index = torch.cat(held_out).sort().values
    keep = torch.ones(labels.shape[0], dtype=torch.bool)
    keep[held_index] = False
    return keep.nonzero().view(-1), held_index


def stratified_split(data: ImageData, fraction: float, seed: int) -> tuple[ImageData, ImageData]:
    """(train, validation): `fraction` of each class held out, chosen by a seeded permutation."""
    train_index, val_index = stratified_indices(data.labels, fraction, seed + 7919)
    return data.select(train_index), data.select(val_index)


def channel_stats(data: ImageData) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of the pixels scaled to [0, 1].

    Exact integer sums over chunks of images: no float copy of the whole set, and the same figures whether
    the images are in memory or decoded from files.
    """
    channels = data.image_shape[0]
    chunk = max(1, (1 << 24) // max(1, math.prod(data.image_shape)))  # images per step: ~16M pixels, 128 MB as int64
    total, squares = [0] * channels, [0] * channels
    for start in range(0, len(data), chunk):
        images = data.images[start : start + chunk].to(torch.int64)
        sums = images.sum(dim=(0, 2, 3)).tolist()
        square_sums = images.square().sum(dim=(0, 2, 3)).tolist()
        total = [a + int(b) for a, b in zip(total, sums, strict=True)]
        squares = [a + int(b) for a, b in zip(squares, square_sums, strict=True)]
    count = len(data) * data.image_shape[1] * data.image_shape[2]  # pixels per channel
    mean = tuple(s / count / 255 for s in total)
    # unbiased variance, as torch.std: (n * sum(x^2) - sum(x)^2) / (n (n - 1)), in exact integers
    std = tuple(
        ((count * q - s * s) / (count * max(count - 1, 1))) ** 0.5 / 255 for s, q in zip(total, squares, strict=True)
    )
    return mean, std
