"""Batch augmentation as a specification: every output is one of the allowed crops and mirror images of its input,
every allowed one occurs, erasing zeroes one rectangle of the allowed size in the expected share of images."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trainlab.data.augment import Augmentation


def candidates(image: torch.Tensor, padding: int, flip: bool) -> list[torch.Tensor]:
    """Every crop of the zero-padded image (and its mirror image), written out one by one."""
    _, h, w = image.shape
    padded = F.pad(image, (padding, padding, padding, padding))
    crops = [padded[:, y : y + h, x : x + w] for y in range(2 * padding + 1) for x in range(2 * padding + 1)]
    return crops + ([crop.flip(2) for crop in crops] if flip else [])


def test_each_augmented_image_is_one_crop_or_mirror_image_of_its_input_and_each_occurs():
    torch.manual_seed(0)
    images = torch.randint(1, 256, (2000, 3, 9, 7), dtype=torch.uint8)  # no zero pixel: a shift always shows
    out = Augmentation(padding=2, flip=True, erasing=0.0)(images)
    assert out.shape == images.shape and out.dtype == torch.uint8 and out.is_contiguous()
    seen = set()
    for image, result in zip(images, out, strict=True):
        matches = [k for k, crop in enumerate(candidates(image, 2, True)) if torch.equal(crop, result)]
        assert matches, "an output that no crop or mirror image of its input gives"
        seen.add(matches[0])
    assert seen == set(range(50))  # 25 shifts, each plain and mirrored


def test_without_padding_half_the_images_are_mirrored_and_none_moved():
    torch.manual_seed(0)
    images = torch.randint(1, 256, (4000, 1, 5, 6), dtype=torch.uint8)
    out = Augmentation(padding=0, flip=True, erasing=0.0)(images)
    mirrored = torch.tensor([torch.equal(o, i.flip(2)) for o, i in zip(out, images, strict=True)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, images, strict=True)])
    assert bool((mirrored | kept).all())
    assert 0.47 < mirrored.float().mean().item() < 0.53


def test_crop_only_never_mirrors():
    torch.manual_seed(0)
    images = torch.randint(1, 256, (500, 1, 6, 6), dtype=torch.uint8)
    out = Augmentation(padding=1, flip=False, erasing=0.0)(images)
    for image, result in zip(images, out, strict=True):
        assert any(torch.equal(crop, result) for crop in candidates(image, 1, False))


def test_erasing_zeroes_one_rectangle_of_2_to_25_percent_in_a_quarter_of_the_images():
    torch.manual_seed(0)
    images = torch.full((4000, 2, 28, 28), 9, dtype=torch.uint8)
    out = Augmentation(padding=0, flip=False, erasing=0.25)(images)
    erased = 0
    for result in out:
        zero = result[0] == 0
        assert torch.equal(zero, result[1] == 0)  # the same rectangle in every channel
        if not zero.any():
            continue
        erased += 1
        rows, columns = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        height, width = int(rows[-1] - rows[0] + 1), int(columns[-1] - columns[0] + 1)
        assert int(zero.sum()) == height * width  # one filled rectangle
        assert 0.015 <= height * width / (28 * 28) <= 0.28  # 2-25%, each side rounded on its own
    assert 0.22 < erased / len(out) < 0.28


def test_the_same_seed_gives_the_same_augmented_batch():
    images = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    augment = Augmentation(padding=2, flip=True, erasing=0.25)
    torch.manual_seed(5)
    first = augment(images)
    torch.manual_seed(5)
    assert torch.equal(augment(images), first)
    assert not torch.equal(augment(images), first)
