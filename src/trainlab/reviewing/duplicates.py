"""Exact and near duplicates, and blank images, among the decoded pixels of every split.

Exact: the same decoded pixels (a BLAKE2 hash of the uint8 tensor), whatever the files' formats. Near: the
cosine similarity of the images shrunk to 32x32 gray, less their mean, is at least NEAR_DUPLICATE_COSINE;
subtracting the mean makes a brightness shift no difference, and the shrinking makes a re-encoded (JPEG)
or resized copy one. Blank: every pixel the same value (a failed export, an empty scan).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from torch.nn import functional

NEAR_SIZE = 32  # pixels a side of the shrunk gray images compared for near duplicates
# 0.993, measured on 6,000 Fashion-MNIST training images (whose garments look much alike): 99.8% of their
# JPEG (quality 75) copies reach it, 0.3% of the images have another image as close; a 1-pixel shift scores
# about 0.89, so a shifted copy is not one (at 16x16 the same 99.8% of copies need 0.997, which 0.15% reach)
NEAR_DUPLICATE_COSINE = 0.993
ROWS_PER_BLOCK = 512  # images compared against all others at once: a block of similarities is 512 x N floats


@dataclass(frozen=True)
class Image:
    """Where an image is: its split and its row in that split."""

    split: str
    row: int


@dataclass(frozen=True)
class Pair:
    """Two images that are (near) copies: `copy` is the later one, `of` the first seen (train before test)."""

    copy: Image
    of: Image
    similarity: float  # 1.0 for an exact duplicate
    exact: bool


def pixel_hash(image: torch.Tensor) -> bytes:
    """A digest of an image's decoded pixels and shape."""
    pixels = image.contiguous().cpu()
    return hashlib.blake2b(pixels.numpy().tobytes() + str(tuple(pixels.shape)).encode(), digest_size=16).digest()


def blank_rows(images: torch.Tensor) -> list[int]:
    """Rows whose every pixel (all channels) has one value."""
    flat = images.reshape(len(images), -1)
    return torch.nonzero(flat.amax(dim=1) == flat.amin(dim=1)).flatten().tolist()


def shrunk_features(images: torch.Tensor) -> torch.Tensor:
    """Unit vectors of the images shrunk to NEAR_SIZE x NEAR_SIZE gray, less their mean (zero for a blank)."""
    gray = images.float().mean(dim=1, keepdim=True)
    small = functional.adaptive_avg_pool2d(gray, NEAR_SIZE).flatten(1)
    small = small - small.mean(dim=1, keepdim=True)
    return functional.normalize(small, dim=1)


def exact_pairs(splits: dict[str, torch.Tensor]) -> list[Pair]:
    """Every image whose pixels equal an earlier one's, paired with the first of them."""
    first: dict[bytes, Image] = {}
    pairs = []
    for split, images in splits.items():
        for row in range(len(images)):
            seen = first.setdefault(pixel_hash(images[row]), Image(split, row))
            if seen != Image(split, row):
                pairs.append(Pair(Image(split, row), seen, 1.0, True))
    return pairs


def near_pairs(
    splits: dict[str, torch.Tensor], exact: list[Pair], threshold: float = NEAR_DUPLICATE_COSINE
) -> list[Pair]:
    """Each image most like an earlier one (cosine >= threshold) that is not an exact copy, with that one."""
    where = [Image(split, row) for split, images in splits.items() for row in range(len(images))]
    if len(where) < 2:
        return []
    features = torch.cat([shrunk_features(images.cpu()) for images in splits.values()])
    copies = {pair.copy for pair in exact}
    pairs = []
    for start in range(0, len(where), ROWS_PER_BLOCK):
        block = features[start : start + ROWS_PER_BLOCK] @ features[: start + ROWS_PER_BLOCK].T
        block = torch.tril(block, diagonal=start - 1)  # only earlier images: each pair is found once, from its copy
        best, index = block.max(dim=1)
        for offset in torch.nonzero(best >= threshold).flatten().tolist():
            copy, of = where[start + offset], where[int(index[offset])]
            if copy not in copies:
                pairs.append(Pair(copy, of, min(float(best[offset]), 1.0), False))
    return pairs
