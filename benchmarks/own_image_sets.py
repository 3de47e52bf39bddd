"""Small, varied image sets written the way users hand them to trainlab (issue 29): class folders or a CSV.

Every set is made from a seed in a few seconds, as uint8 arrays, then written to disk:
ROOT/train/<class>/*.png|jpg and ROOT/test/<class>/* (class folders), or ROOT/images/* with ROOT/labels.csv and
ROOT/test_labels.csv (`file name, label` rows, the tutorial's CSV layout). Real pictures where they exist offline
(scikit-learn's digits and sample photos, scikit-image's bundled textures and faces, Fashion-MNIST from the data
folder), generated ones where not. Used by benchmarks/own_images.py and tests/test_own_image_sets.py.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

MARKER = "own_image_set.json"  # written last into a set's folder: says the folder is ours to replace


class SetUnavailable(Exception):
    """A set whose source is missing on this machine (e.g. no Fashion-MNIST in the data folder)."""


@dataclass
class ImageSet:
    """A labelled train and test set as uint8 arrays (N, H, W) gray or (N, H, W, 3) RGB, and where it comes from."""

    name: str
    classes: tuple[str, ...]
    train_images: np.ndarray
    train_labels: np.ndarray  # int64 (N,), indices into classes
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str  # where the pixels come from, for the report
    file_format: str = "png"  # png or jpg
    notes: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, ...]:
        """One image's shape: (H, W) or (H, W, 3)."""
        return tuple(self.train_images.shape[1:])


@dataclass
class WrittenSet:
    """A set on disk: the trainlab flags that name its data, and every file with its class index."""

    image_set: ImageSet
    root: Path
    layout: str  # folders or csv
    data_flags: list[str]
    train_files: list[tuple[Path, int]]
    test_files: list[tuple[Path, int]]


# ---- the sets ----------------------------------------------------------------------------------------------


def make_digits(seed: int, data_dir: Path | None = None) -> ImageSet:
    """scikit-learn's handwritten digits: real 8x8 gray, 10 classes, 1,437 train / 360 test (a seeded split)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255 / 16)).astype(np.uint8)  # values 0..16 -> 0..255
    labels = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    test, train = order[:360], order[360:]
    classes = tuple(str(digit) for digit in range(10))
    source = "scikit-learn load_digits (UCI optical digits, real, 8x8 gray)"
    return ImageSet("digits", classes, images[train], labels[train], images[test], labels[test], source)


def make_textures(seed: int, data_dir: Path | None = None, per_class: tuple[int, int] = (240, 80)) -> ImageSet:
    """Gray 40x40 random crops of real photos, one class per photo; test crops come from a region train never sees."""
    from sklearn.datasets import load_sample_images

    samples = load_sample_images()
    photos = {
        Path(name).stem: np.asarray(Image.fromarray(image).convert("L"))
        for name, image in zip(samples.filenames, samples.images, strict=True)
    }
    notes = []
    try:
        import skimage.data

        for name in ("brick", "grass", "gravel"):
            photos[name] = np.asarray(getattr(skimage.data, name)(), dtype=np.uint8)
        source = "real photos: scikit-learn china, flower; scikit-image brick, grass, gravel (bundled)"
    except ImportError:
        photos["noise"] = generated_texture(np.random.default_rng(seed + 1), 512)
        source = "real photos: scikit-learn china, flower; third class generated (scikit-image is not installed)"
        notes.append("scikit-image missing: class 'noise' is a generated texture, not a photo")
    rng = np.random.default_rng(seed)
    classes = tuple(photos)
    splits = {}
    for split, count in zip(("train", "test"), per_class, strict=True):
        images, labels = [], []
        for label, photo in enumerate(photos.values()):
            images += [random_crop(photo, rng, split) for _ in range(count)]
            labels += [label] * count
        splits[split] = (np.stack(images), np.asarray(labels, dtype=np.int64))
    return ImageSet("textures", classes, *splits["train"], *splits["test"], source, notes=notes)


TRAIN_SHARE = 0.65  # of a photo's width: train crops come from its left part, test crops from the rest
CROP_SIDE = 40  # pixels
CROP_WINDOW = (40, 72)  # pixels: the window cut from the photo before it is resized to CROP_SIDE (scale jitter)


def random_crop(photo: np.ndarray, rng: np.random.Generator, split: str) -> np.ndarray:
    """A CROP_SIDE square cut from a random window of the split's part of the photo."""
    height, width = photo.shape
    boundary = int(width * TRAIN_SHARE)
    left, right = (0, boundary) if split == "train" else (boundary, width)
    window = int(rng.integers(CROP_WINDOW[0], min(CROP_WINDOW[1], right - left, height) + 1))
    x = int(rng.integers(left, right - window + 1))
    y = int(rng.integers(0, height - window + 1))
    crop = Image.fromarray(photo[y : y + window, x : x + window])
    return np.asarray(crop.resize((CROP_SIDE, CROP_SIDE), Image.Resampling.BILINEAR))


def generated_texture(rng: np.random.Generator, side: int) -> np.ndarray:
    """A gray texture of random oriented waves and noise (stand-in for a photo when scikit-image is missing)."""
    y, x = np.mgrid[0:side, 0:side].astype(np.float64)
    texture = np.zeros((side, side))
    for _ in range(6):
        angle, frequency, phase = rng.uniform(0, math.pi), rng.uniform(0.05, 0.4), rng.uniform(0, 2 * math.pi)
        texture += np.sin(frequency * (x * math.cos(angle) + y * math.sin(angle)) + phase)
    texture += rng.normal(0, 1.5, texture.shape)
    texture = (texture - texture.min()) / (texture.max() - texture.min())
    return (texture * 255).astype(np.uint8)


MIRROR_SIDE = 24  # pixels
MIRROR_CLASSES = ("arrow_left", "arrow_right", "b", "d")  # a left-right mirror turns each class into its pair


def make_mirrored(seed: int, data_dir: Path | None = None, per_class: tuple[int, int] = (300, 100)) -> ImageSet:
    """Generated 24x24 gray glyphs whose mirror image is another class: arrow left <-> right, b <-> d."""
    rng = np.random.default_rng(seed)
    draw_left = {"arrow_left": draw_arrow_left, "b": draw_b}
    splits = {}
    for split, count in zip(("train", "test"), per_class, strict=True):
        images, labels = [], []
        for label, name in enumerate(MIRROR_CLASSES):
            # the right-pointing classes are mirrors of freshly drawn left ones: every jitter is symmetric
            base = draw_left.get(name) or draw_left[MIRROR_CLASSES[label - 1]]
            mirrored = name not in draw_left
            for _ in range(count):
                image = jittered_glyph(base, rng)
                images.append(np.ascontiguousarray(image[:, ::-1]) if mirrored else image)
                labels.append(label)
        splits[split] = (np.stack(images), np.asarray(labels, dtype=np.int64))
    source = "generated: arrows and b/d glyphs, random scale/shift/rotation/stroke, gaussian noise"
    return ImageSet("mirrored", MIRROR_CLASSES, *splits["train"], *splits["test"], source)


def draw_arrow_left(draw: ImageDraw.ImageDraw, size: int, stroke: int) -> None:
    """A left-pointing arrow: a shaft and a filled head, centred in a size x size canvas."""
    middle, quarter = size // 2, size // 4
    draw.line([(quarter + stroke, middle), (size - quarter, middle)], fill=255, width=stroke)
    draw.polygon([(quarter - stroke, middle), (middle, quarter), (middle, size - quarter)], fill=255)


def draw_b(draw: ImageDraw.ImageDraw, size: int, stroke: int) -> None:
    """A lower-case b: a tall stem on the left and a round bowl at its foot on the right."""
    left, top, bottom = size * 0.3, size * 0.15, size * 0.85
    draw.line([(left, top), (left, bottom)], fill=255, width=stroke)
    draw.ellipse([left, size * 0.45, size * 0.75, bottom], outline=255, width=stroke)


def jittered_glyph(draw_glyph: Callable, rng: np.random.Generator) -> np.ndarray:
    """One glyph drawn at 4x, rotated, scaled and shifted at random, shrunk to MIRROR_SIDE, with noise."""
    big = MIRROR_SIDE * 4
    canvas = Image.new("L", (big, big), 0)
    draw_glyph(ImageDraw.Draw(canvas), big, int(rng.integers(7, 13)))
    canvas = canvas.rotate(float(rng.uniform(-12, 12)), resample=Image.Resampling.BILINEAR)
    scale = float(rng.uniform(0.7, 1.05))
    side = max(8, round(MIRROR_SIDE * scale))
    glyph = canvas.resize((side, side), Image.Resampling.BOX)
    out = Image.new("L", (MIRROR_SIDE, MIRROR_SIDE), 0)
    slack = MIRROR_SIDE - side
    shift = 3  # pixels each way beyond centring
    x = (slack // 2) + int(rng.integers(-shift, shift + 1))
    y = (slack // 2) + int(rng.integers(-shift, shift + 1))
    out.paste(glyph, (x, y))
    pixels = np.asarray(out, dtype=np.float64) * rng.uniform(0.6, 1.0) + rng.uniform(0, 50)
    pixels += rng.normal(0, 18, pixels.shape)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


SHAPE_SIDE = 32  # pixels
SHAPE_CLASSES = ("disc", "ring", "square", "triangle", "plus", "star")  # a mirror leaves each one its class


def make_colour_shapes(seed: int, data_dir: Path | None = None, per_class: tuple[int, int] = (300, 100)) -> ImageSet:
    """Generated 32x32 RGB pictures: a textured shape on a textured background; the class is the shape."""
    rng = np.random.default_rng(seed)
    splits = {}
    for split, count in zip(("train", "test"), per_class, strict=True):
        images, labels = [], []
        for label, shape in enumerate(SHAPE_CLASSES):
            images += [shape_picture(shape, rng) for _ in range(count)]
            labels += [label] * count
        splits[split] = (np.stack(images), np.asarray(labels, dtype=np.int64))
    source = "generated: textured shapes on textured backgrounds, colour/position/scale/rotation jitter, noise"
    return ImageSet("colour-shapes", SHAPE_CLASSES, *splits["train"], *splits["test"], source)


def shape_outline(shape: str, centre: tuple[float, float], radius: float, angle: float) -> list[tuple[float, float]]:
    """The polygon of a square, triangle, plus or star (rotated by angle radians)."""
    if shape == "square":
        corners = [(radius * math.cos(a), radius * math.sin(a)) for a in (0.25 * math.pi * k for k in (1, 3, 5, 7))]
    elif shape == "triangle":
        corners = [
            (radius * math.cos(a), radius * math.sin(a)) for a in (-math.pi / 2 + 2 * math.pi * k / 3 for k in range(3))
        ]
    elif shape == "star":
        corners = [
            (
                (radius if k % 2 == 0 else radius * 0.45) * math.cos(-math.pi / 2 + math.pi * k / 5),
                (radius if k % 2 == 0 else radius * 0.45) * math.sin(-math.pi / 2 + math.pi * k / 5),
            )
            for k in range(10)
        ]
    else:  # plus
        arm = radius * 0.35
        corners = [
            (arm, -radius),
            (arm, -arm),
            (radius, -arm),
            (radius, arm),
            (arm, arm),
            (arm, radius),
            (-arm, radius),
            (-arm, arm),
            (-radius, arm),
            (-radius, -arm),
            (-arm, -arm),
            (-arm, -radius),
        ]
    cos, sin = math.cos(angle), math.sin(angle)
    return [(centre[0] + x * cos - y * sin, centre[1] + x * sin + y * cos) for x, y in corners]


def textured_fill(rng: np.random.Generator, side: int) -> np.ndarray:
    """An RGB (side, side, 3) float texture: two random colours mixed by stripes, checks or blotches."""
    first, second = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    y, x = np.mgrid[0:side, 0:side].astype(np.float64)
    kind = int(rng.integers(3))
    period = rng.uniform(4, 12)
    if kind == 0:
        angle = rng.uniform(0, math.pi)
        mix = 0.5 + 0.5 * np.sin(2 * math.pi * (x * math.cos(angle) + y * math.sin(angle)) / period)
    elif kind == 1:
        mix = ((x // period + y // period) % 2).astype(np.float64)
    else:
        mix = rng.uniform(0, 1, (side // 8, side // 8))
        mix = np.asarray(Image.fromarray((mix * 255).astype(np.uint8)).resize((side, side), Image.Resampling.BICUBIC))
        mix = mix / 255.0
    return first * mix[..., None] + second * (1 - mix[..., None])


def shape_picture(shape: str, rng: np.random.Generator) -> np.ndarray:
    """One 32x32 RGB picture of `shape`, drawn at 2x and shrunk so its edges are smooth."""
    big = SHAPE_SIDE * 2
    background, foreground = textured_fill(rng, big), textured_fill(rng, big)
    # the shape stands out by brightness too, so it is visible whatever the two textures' colours
    foreground = np.clip(foreground * 0.5 + (200 if rng.uniform() < 0.5 else 0), 0, 255)
    background = background * 0.5 + (0 if foreground.mean() > 128 else 128)
    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)
    radius = rng.uniform(0.28, 0.42) * big
    margin = radius + 2
    centre = (rng.uniform(margin, big - margin), rng.uniform(margin, big - margin))
    box = [centre[0] - radius, centre[1] - radius, centre[0] + radius, centre[1] + radius]
    if shape == "disc":
        draw.ellipse(box, fill=255)
    elif shape == "ring":
        draw.ellipse(box, outline=255, width=max(4, round(radius * 0.35)))
    else:
        draw.polygon(shape_outline(shape, centre, radius, rng.uniform(0, 2 * math.pi)), fill=255)
    alpha = np.asarray(mask, dtype=np.float64)[..., None] / 255
    picture = foreground * alpha + background * (1 - alpha)
    small = Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8)).resize(
        (SHAPE_SIDE, SHAPE_SIDE), Image.Resampling.BOX
    )
    pixels = np.asarray(small, dtype=np.float64) + rng.normal(0, 10, (SHAPE_SIDE, SHAPE_SIDE, 3))
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


PRODUCT_SIDE = 96  # pixels
PRODUCT_COUNTS = (2000, 1000)  # train, test


def make_products(seed: int, data_dir: Path | None = None) -> ImageSet:
    """Fashion-MNIST garments as 96x96 RGB JPEG 'product photos': tinted, scaled, placed on a coloured backdrop."""
    from trainlab import load_dataset
    from trainlab.errors import TrainlabError

    try:
        data = load_dataset("fashion-mnist", data_dir=data_dir, download=False)
    except TrainlabError as exc:
        raise SetUnavailable(f"no Fashion-MNIST in {data_dir} ({exc})") from None
    rng = np.random.default_rng(seed)
    splits = {}
    for split, part, count in zip(("train", "test"), (data.train, data.test), PRODUCT_COUNTS, strict=True):
        chosen = np.sort(rng.permutation(len(part))[:count])
        garments = part.images[chosen, 0].numpy()
        splits[split] = (np.stack([product_photo(g, rng) for g in garments]), part.labels[chosen].numpy())
    classes = tuple(name.replace("/", "-") for name in data.classes)  # "T-shirt/top" cannot name a folder
    source = f"Fashion-MNIST from {data_dir} (trainlab.load_dataset), 28x28 gray -> 96x96 RGB JPEG, tint + backdrop"
    return ImageSet("products", classes, *splits["train"], *splits["test"], source, file_format="jpg")


def product_photo(garment: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 28x28 gray garment tinted, enlarged to 60-92 pixels and placed at random on a light gradient backdrop."""
    side = int(rng.integers(60, 93))
    alpha = np.asarray(Image.fromarray(garment).resize((side, side), Image.Resampling.BICUBIC), dtype=np.float64)
    alpha = (alpha / 255)[..., None]
    tint = rng.uniform(20, 200, 3)  # darker than the backdrop (150-255), so the garment shows
    top, bottom = rng.uniform(150, 255, 3), rng.uniform(150, 255, 3)
    ramp = np.linspace(0, 1, PRODUCT_SIDE)[:, None, None]
    photo = np.broadcast_to(top * (1 - ramp) + bottom * ramp, (PRODUCT_SIDE, PRODUCT_SIDE, 3)).copy()
    x, y = (int(rng.integers(0, PRODUCT_SIDE - side + 1)) for _ in range(2))
    region = photo[y : y + side, x : x + side]
    photo[y : y + side, x : x + side] = region * (1 - alpha) + tint * alpha * 0.8 + region * alpha * 0.2
    photo += rng.normal(0, 6, photo.shape)
    return np.clip(np.rint(photo), 0, 255).astype(np.uint8)


MANY_SIDE = 12  # pixels
MANY_CLASSES = 20


def make_many_classes(seed: int, data_dir: Path | None = None, per_class: tuple[int, int] = (80, 20)) -> ImageSet:
    """Generated 12x12 gray patterns, 20 classes of 100: each a random blob prototype, shifted, scaled and noisy."""
    rng = np.random.default_rng(seed)
    prototypes = [random_prototype(rng) for _ in range(MANY_CLASSES)]
    splits = {}
    for split, count in zip(("train", "test"), per_class, strict=True):
        images, labels = [], []
        for label, prototype in enumerate(prototypes):
            images += [jittered_pattern(prototype, rng) for _ in range(count)]
            labels += [label] * count
        splits[split] = (np.stack(images), np.asarray(labels, dtype=np.int64))
    classes = tuple(f"pattern{index:02d}" for index in range(MANY_CLASSES))
    source = "generated: 20 random 3-5-blob prototypes, shift +-1 px, contrast, noise"
    return ImageSet("many-classes", classes, *splits["train"], *splits["test"], source)


def random_prototype(rng: np.random.Generator) -> np.ndarray:
    """A (16, 16) float pattern in [0, 1]: 3 to 5 gaussian blobs at random places (cropped to 12x12 later)."""
    y, x = np.mgrid[0:16, 0:16].astype(np.float64)
    pattern = np.zeros((16, 16))
    for _ in range(int(rng.integers(3, 6))):
        cy, cx, width = rng.uniform(3, 13), rng.uniform(3, 13), rng.uniform(0.8, 2.0)
        pattern += np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * width**2))
    return pattern / pattern.max()


def jittered_pattern(prototype: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 12x12 window of the prototype shifted up to 1 pixel, with random contrast, offset and noise."""
    dy, dx = (int(rng.integers(1, 4)) for _ in range(2))
    window = prototype[dy : dy + MANY_SIDE, dx : dx + MANY_SIDE]
    pixels = window * rng.uniform(150, 255) + rng.uniform(0, 50) + rng.normal(0, 25, window.shape)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


TINY_SIDE = 25  # pixels


def make_tiny(seed: int, data_dir: Path | None = None, per_class: tuple[int, int] = (70, 30)) -> ImageSet:
    """Faces vs non-faces, 25x25 gray, 70 train / 30 test each: scikit-image's lfw_subset, else generated."""
    try:
        import skimage.data

        pictures = np.rint(skimage.data.lfw_subset() * 255).astype(np.uint8)  # 100 faces, then 100 non-faces
        faces, others = pictures[:100], pictures[100:]
        source = "real: scikit-image lfw_subset (100 LFW faces, 100 non-face crops), 25x25 gray"
        notes = []
    except ImportError:
        faces, others = generated_faces(np.random.default_rng(seed + 1), 100)
        source = "generated face-like ovals vs blobs (scikit-image is not installed)"
        notes = ["scikit-image missing: generated faces-like pictures, not real ones"]
    rng = np.random.default_rng(seed)
    train_count, test_count = per_class
    parts = {"train": ([], []), "test": ([], [])}
    for label, group in enumerate((faces, others)):
        order = rng.permutation(len(group))
        for split, chosen in (("train", order[:train_count]), ("test", order[train_count : train_count + test_count])):
            parts[split][0].extend(group[chosen])
            parts[split][1].extend([label] * len(chosen))
    arrays = [(np.stack(images), np.asarray(labels, dtype=np.int64)) for images, labels in parts.values()]
    return ImageSet("tiny", ("face", "not_face"), *arrays[0], *arrays[1], source, notes=notes)


def generated_faces(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(faces, non-faces), each (count, 25, 25) uint8: ovals with eyes and mouth vs random blobs."""
    faces, others = [], []
    for _ in range(count):
        face = Image.new("L", (TINY_SIDE, TINY_SIDE), int(rng.integers(20, 90)))
        draw = ImageDraw.Draw(face)
        dx, dy = (int(rng.integers(-2, 3)) for _ in range(2))
        draw.ellipse([4 + dx, 2 + dy, 20 + dx, 23 + dy], fill=int(rng.integers(150, 230)))
        for eye in (8, 15):
            draw.ellipse([eye + dx - 1, 9 + dy, eye + dx + 2, 11 + dy], fill=30)
        draw.line([(9 + dx, 18 + dy), (16 + dx, 18 + dy)], fill=60, width=2)
        faces.append(np.asarray(face))
        blob = Image.new("L", (TINY_SIDE, TINY_SIDE), int(rng.integers(20, 120)))
        draw = ImageDraw.Draw(blob)
        for _ in range(int(rng.integers(2, 6))):
            x, y, r = (int(v) for v in rng.integers((0, 0, 3), (TINY_SIDE, TINY_SIDE, 10)))
            draw.ellipse([x - r, y - r, x + r, y + r], fill=int(rng.integers(60, 255)))
        others.append(np.asarray(blob))
    noise = [rng.normal(0, 12, (count, TINY_SIDE, TINY_SIDE)) for _ in range(2)]
    return tuple(
        np.clip(np.rint(np.stack(group) + n), 0, 255).astype(np.uint8)
        for group, n in zip((faces, others), noise, strict=True)
    )


@dataclass(frozen=True)
class SetSpec:
    """How to make a named set and which layout it is written in."""

    make: Callable[..., ImageSet]
    layout: str = "folders"  # folders (written class-sorted, as a folder walk reads it) or csv


SETS = {
    "digits": SetSpec(make_digits),
    "digits-csv": SetSpec(make_digits, "csv"),
    "textures": SetSpec(make_textures),
    "mirrored": SetSpec(make_mirrored),
    "colour-shapes": SetSpec(make_colour_shapes),
    "products": SetSpec(make_products),
    "many-classes": SetSpec(make_many_classes),
    "tiny": SetSpec(make_tiny),
}


# ---- writing -----------------------------------------------------------------------------------------------


def encode(image: np.ndarray, file_format: str) -> bytes:
    """The PNG or JPEG (quality 90) bytes of one uint8 image; the same bytes for the same pixels."""
    buffer = io.BytesIO()
    picture = Image.fromarray(image)
    if file_format == "jpg":
        picture.save(buffer, format="JPEG", quality=90)
    else:
        picture.save(buffer, format="PNG")
    return buffer.getvalue()


def write_set(image_set: ImageSet, root: Path, layout: str = "folders") -> WrittenSet:
    """Write the set under root (replacing a set this module wrote there before) and say how trainlab reads it."""
    root = Path(root)
    if root.exists():
        if not (root / MARKER).is_file():
            raise FileExistsError(f"{root} exists and is not a set written by own_image_sets.py; choose another --out")
        shutil.rmtree(root)
    root.mkdir(parents=True)
    write = write_class_folders if layout == "folders" else write_csv_layout
    data_flags, train_files, test_files = write(image_set, root)
    marker = {"name": image_set.name, "layout": layout, "source": image_set.source, "classes": image_set.classes}
    (root / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    return WrittenSet(image_set, root, layout, data_flags, train_files, test_files)


def write_class_folders(image_set: ImageSet, root: Path) -> tuple[list[str], list, list]:
    """ROOT/<split>/<class>/<class>_<n>.<ext>, class by class: the order a folder walk gives."""
    files = {}
    for split in ("train", "test"):
        images, labels = getattr(image_set, f"{split}_images"), getattr(image_set, f"{split}_labels")
        files[split] = []
        for label, name in enumerate(image_set.classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for number, index in enumerate(np.flatnonzero(labels == label)):
                path = folder / f"{name}_{number:05d}.{image_set.file_format}"
                path.write_bytes(encode(images[index], image_set.file_format))
                files[split].append((path, label))
    return ["--dataset", "folder", "--image-dir", str(root)], files["train"], files["test"]


def write_csv_layout(image_set: ImageSet, root: Path) -> tuple[list[str], list, list]:
    """ROOT/images/<split>_<n>.<ext> in the set's own order; ROOT/labels.csv, ROOT/test_labels.csv (class numbers)."""
    images_dir = root / "images"
    images_dir.mkdir()
    files = {}
    for split, csv_name in (("train", "labels.csv"), ("test", "test_labels.csv")):
        images, labels = getattr(image_set, f"{split}_images"), getattr(image_set, f"{split}_labels")
        files[split] = []
        with open(root / csv_name, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file_name", "label"])
            for number, (image, label) in enumerate(zip(images, labels, strict=True)):
                name = f"{split}_{number:05d}.{image_set.file_format}"
                (images_dir / name).write_bytes(encode(image, image_set.file_format))
                writer.writerow([name, int(label)])
                files[split].append((images_dir / name, int(label)))
    flags = ["--dataset", "csv", "--annotations", str(root / "labels.csv")]
    flags += ["--test-annotations", str(root / "test_labels.csv"), "--image-dir", str(images_dir)]
    return flags, files["train"], files["test"]


def read_pixels(files: list[tuple[Path, int]], rgb: bool) -> tuple[np.ndarray, np.ndarray]:
    """The written files decoded back (what trainlab reads) as float32 rows in [0, 1], and their labels."""
    mode = "RGB" if rgb else "L"
    rows = []
    for path, _ in files:
        with Image.open(path) as picture:
            rows.append(np.asarray(picture.convert(mode), dtype=np.float32).reshape(-1) / 255)
    return np.stack(rows), np.asarray([label for _, label in files], dtype=np.int64)
