"""The user's own images (--dataset csv or folder) as ImageData: decoded once and cached, or streamed.

Every file goes through data.decoding.load_image, the function `trainlab predict` uses for a user's image,
so training, evaluation and prediction see the same pixels (training: raw; evaluation on pictures: the
input style asked for). Decoded sets are cached next to the images
and reused while no file changes; a set larger than the memory budget is streamed from the files instead.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from trainlab.config import TrainConfig
from trainlab.data.annotations import FileSet, derive_classes, label_indices, read_class_folders, read_csv_annotations
from trainlab.data.cache import DecodedImages, cache_file, cache_key, decode_files, read_cache, write_cache
from trainlab.data.decoding import read_header
from trainlab.data.input_styles import RAW, InputStyle
from trainlab.data.memory import ImageData, stratified_indices
from trainlab.data.split_advice import recipe_test_share, separate_test_hint, too_small, working_val_split
from trainlab.data.streaming import FileBackedImages, memory_budget_bytes
from trainlab.data.weights_input import weights_input
from trainlab.data.workers import PARALLEL_DECODE_MINIMUM, default_workers, read_in_batches
from trainlab.errors import DataError

TEST_HOLDOUT_SEED = 104_729  # fixed, so runs with different --seed are tested on the same held-out images
SHOWN_BAD_FILES = 5  # named in the message; the rest are counted


class NoTestSet(DataError):
    """A single CSV or image tree without --val-split: no images are held out for testing."""


@dataclass
class Part:
    """A split's share of a FileSet: these indices (sorted) of it."""

    files: FileSet
    indices: list[int]


@dataclass
class Survey:
    """What is known about a FileSet before decoding: its shape, readable and unreadable files, its cache."""

    files: FileSet
    shape: tuple[int, int, int]
    present: list[int]  # indices of the files believed readable, in order
    bad: list[tuple[int, str]]  # (index, message naming the file)
    cache_path: Path
    cached: DecodedImages | None
    scanned: bool
    style: InputStyle = RAW


@dataclass
class Prepared:
    """A FileSet decoded (images of its readable files) or streamed (FileBackedImages), and what was said about it."""

    good: list[int]  # indices into the FileSet, in order
    images: torch.Tensor | FileBackedImages
    notes: list[str] = field(default_factory=list)
    to_cache: tuple[Path, DecodedImages] | None = None  # written once every check of the data has passed

    def store(self) -> None:
        """Write the decoded images to their cache, and say where they are (or why they are not cached)."""
        if self.to_cache is None:
            return
        path, decoded = self.to_cache
        problem = write_cache(path, decoded)
        self.notes[0] += f"decoded and cached in {path}" if problem is None else f"decoded (no cache: {problem})"


def file_sources(
    config: TrainConfig, splits: tuple[str, ...], need_train: bool
) -> tuple[FileSet | None, FileSet | None]:
    """(train files, test files) as the options describe them; test is None for a single CSV or tree.

    The training files are read only when needed: for the train split, as the only source, or for the classes.
    """
    if config.dataset == "csv":
        test = read_csv_annotations(config.test_annotations, config.image_dir) if config.test_annotations else None
        if config.annotations and (need_train or test is None):
            return read_csv_annotations(config.annotations, config.image_dir), test
        if test is None or "train" in splits:
            raise DataError("--dataset csv: training needs --annotations FILE.csv (the training rows)")
        return None, test
    root = Path(config.image_dir or ".")
    if (root / "train").is_dir():
        test = read_class_folders(root / "test") if (root / "test").is_dir() else None
        return (read_class_folders(root / "train") if need_train or test is None else None), test
    return read_class_folders(root), None


def plan_parts(
    config: TrainConfig,
    splits: tuple[str, ...],
    train: FileSet | None,
    test: FileSet | None,
    labels: dict[int, torch.Tensor],
) -> dict[str, Part]:
    """Which files each split gets; a single CSV or tree is split by --val-split, or by the auto recipe's share
    (its test part held out)."""
    parts: dict[str, Part] = {}
    if test is not None:
        if train is not None:
            parts["train"] = Part(train, list(range(len(train))))
        parts["test"] = Part(test, list(range(len(test))))
        return {split: parts[split] for split in splits}
    assert train is not None
    everything = list(range(len(train)))
    class_sizes = torch.bincount(labels[id(train)]).tolist()
    test_share = config.val_split or recipe_test_share(config, class_sizes)  # the recipe sets val_split to it
    if test_share:
        keep, held = stratified_indices(labels[id(train)], test_share, TEST_HOLDOUT_SEED)
        parts = {"train": Part(train, keep.tolist()), "test": Part(train, held.tolist())}
    elif "train" in splits and "test" in splits:
        value = working_val_split(class_sizes, holds_out_test=True)
        if value is None:
            raise NoTestSet(
                f"{train.name} is the only source of images, so there is no test set, and its images are "
                f"{too_small(class_sizes, holds_out_test=True)}: give {separate_test_hint(config)}, or more images"
            )
        flag = f"--preset auto --val-split {value:g}" if config.recipe == "auto" else f"--val-split {value:g}"
        raise NoTestSet(  # --val-split alone is a recipe flag: it would switch the chosen recipe off
            f"{train.name} is the only source of images, so there is no test set: give {separate_test_hint(config)}, "
            f"or {flag} to hold out a seeded, stratified part of it for testing"
        )
    else:
        parts = {"train": Part(train, everything), "test": Part(train, everything)}  # evaluate on all of it
    return {split: parts[split] for split in splits}


def load_image_files(
    config: TrainConfig,
    splits: tuple[str, ...] = ("train", "test"),
    classes: tuple[str, ...] | None = None,
    image_shape: tuple[int, int, int] | None = None,
    style: InputStyle = RAW,
) -> tuple[dict[str, ImageData], list[str]]:
    """The requested splits of a csv/folder data set, and lines saying how they are held (memory or stream).

    classes: map labels onto these (a checkpoint's); default: the training labels' classes.
    image_shape: (C, H, W) to decode to (a checkpoint's input); default: --channels/--image-size, else the data's.
    style: the input style pictures go through (evaluation on photos); training data is always raw.
    """
    train, test = file_sources(config, splits, need_train="train" in splits or classes is None)
    if classes is None:
        classes = derive_classes(train or test)  # type: ignore[arg-type]
    sources = [files for files in (train, test) if files is not None]
    labels = {id(files): torch.tensor(label_indices(files, classes), dtype=torch.long) for files in sources}
    parts = plan_parts(config, splits, train, test, labels)
    needed = [files for files in sources if any(part.files is files for part in parts.values())]
    wanted = image_shape or (config.channels, config.image_size, config.image_size)
    pretrained = weights_input(config.model, config.weights)
    if pretrained is not None and style.name == "raw":  # decoded as the weights' own transforms() would
        wanted, style = image_shape or (3, pretrained.crop, pretrained.crop), replace(style, resize=pretrained.resize)
    workers = config.workers if config.workers is not None else default_workers()
    surveys: list[Survey] = []
    for files in needed:  # train first: its shape is the test set's
        surveys.append(survey(files, surveys[0].shape if surveys else wanted, workers, style))
    budget = memory_budget_bytes(config.memory_budget_mb)
    total = sum(nbytes(len(s.present), s.shape) for s in surveys)
    prepared = {id(s.files): prepare(s, workers, config.skip_bad_images, total, budget) for s in surveys}
    data = {}
    for split, part in parts.items():
        ready = prepared[id(part.files)]
        data[split] = take(ready, part, labels[id(part.files)], classes)
    for ready in prepared.values():  # only now: a data set refused above leaves no cache in the user's folder
        ready.store()
    notes = [note for files in needed for note in prepared[id(files)].notes]
    if config.dataset == "folder" and not config.shuffle and config.recipe != "auto" and "train" in splits:
        notes.append(
            "class folders are read class by class and shuffle is off: most batches hold one class "
            "(--shuffle mixes them)"
        )
    return data, notes


def take(ready: Prepared, part: Part, labels: torch.Tensor, classes: tuple[str, ...]) -> ImageData:
    """The split's readable files as ImageData (rows of the decoded tensor, or a subset of the files)."""
    row_of = {index: row for row, index in enumerate(ready.good)}
    rows = [row_of[index] for index in part.indices if index in row_of]
    indices = [index for index in part.indices if index in row_of]
    if part.indices and not rows:  # every file of the split was skipped as unreadable (--skip-bad-images)
        raise DataError(
            f"{part.files.name}: holds no images once the {len(part.indices)} unreadable one(s) are "
            "skipped; fix the files or the paths (--image-dir) rather than skipping them"
        )
    row_index = torch.tensor(rows, dtype=torch.long)
    if isinstance(ready.images, FileBackedImages):
        images = ready.images.select(row_index)
    elif rows == list(range(len(ready.images))):  # every row in order (a train/ or test/ folder): no copy of it all
        images = ready.images
    else:
        images = ready.images[row_index]
    names = tuple(part.files.paths[index] for index in indices)
    return ImageData(images, labels[torch.tensor(indices, dtype=torch.long)], classes, names)


def survey(files: FileSet, wanted: tuple, workers: int, style: InputStyle = RAW) -> Survey:
    """Stat every file, look for a valid cache, and settle the decoded shape (reading headers when unset)."""
    stats = files.stats()
    request = "x".join("auto" if v is None else str(v) for v in wanted) + style.key()
    cache_path = cache_file(files.root, files.source, request, cache_key(request, files.paths, stats))
    cached = read_cache(cache_path)
    if cached is not None:
        unreadable = {i for i, _ in cached.bad}
        present = [i for i in range(len(files)) if i not in unreadable]
        return Survey(files, cached.shape, present, cached.bad, cache_path, cached, False, style)
    bad = [
        (i, f"{files.where[i]}: {files.paths[i]} does not exist in {files.root}")
        for i, stat in enumerate(stats)
        if stat is None
    ]
    present = [i for i, stat in enumerate(stats) if stat is not None]
    if all(v is not None for v in wanted):
        return Survey(files, tuple(wanted), present, bad, cache_path, None, False, style)
    headers, unreadable = scan_headers(files, present, workers)
    shape = resolve_shape(wanted, list(headers.values()))
    return Survey(files, shape, sorted(headers), sorted(bad + unreadable), cache_path, None, True, style)


def prepare(survey: Survey, workers: int, skip_bad: bool, total: int, budget: int) -> Prepared:
    """In memory (from the cache, or decoded and cached) when all sets fit the budget, else streamed."""
    files, shape = survey.files, survey.shape
    if total > budget:
        present, bad = survey.present, survey.bad
        if not survey.scanned:  # find unreadable files now rather than in the middle of an epoch
            headers, unreadable = scan_headers(files, present, workers)
            present, bad = sorted(headers), sorted(bad + unreadable)
        check_bad(files, bad, skip_bad)
        note = (
            f"{files.name}: {len(present)} images {shape_text(shape)} streamed from the files by "
            f"{workers} DataLoader worker(s): decoded, the data would take {total / 2**20:,.1f} MB, over the "
            f"memory budget of {budget / 2**20:,.1f} MB (--memory-budget-mb)"
        )
        paths = [files.absolute(i) for i in present]
        images = FileBackedImages(paths, shape, workers, style=survey.style)
        return Prepared(present, images, [note, *skipped_note(files, bad)])
    if survey.cached is not None:
        check_bad(files, survey.bad, skip_bad)
        note = (
            f"{files.name}: {len(survey.present)} images {shape_text(shape)} in memory, read from the cache "
            f"{survey.cache_path}"
        )
        return Prepared(survey.present, survey.cached.images, [note, *skipped_note(files, survey.bad)])
    paths = [files.absolute(i) for i in range(len(files))]
    good, images, failed = decode_files(paths, shape, survey.present, workers, survey.style)
    bad = sorted(survey.bad + failed)
    check_bad(files, bad, skip_bad)
    note = f"{files.name}: {len(good)} images {shape_text(shape)} in memory, "  # store() says where
    return Prepared(
        good, images, [note, *skipped_note(files, bad)], (survey.cache_path, DecodedImages(shape, images, bad))
    )


def scan_headers(
    files: FileSet, indices: list[int], workers: int
) -> tuple[dict[int, tuple[int, int, int]], list[tuple[int, str]]]:
    """(index -> (channels, height, width)) of the readable files, and the unreadable ones, from headers only."""
    chunks = [indices[start : start + 1024] for start in range(0, len(indices), 1024)]
    paths = [files.absolute(i) for i in range(len(files))]
    found: dict[int, tuple[int, int, int]] = {}
    failed: list[tuple[int, str]] = []
    use_workers = workers if len(indices) >= 4 * PARALLEL_DECODE_MINIMUM else 0
    for done, headers, chunk_failed in read_in_batches(paths, read_header, chunks, use_workers):
        found.update(zip(done, headers, strict=True))
        failed.extend(chunk_failed)
    return found, failed


def resolve_shape(wanted: tuple, headers: list[tuple[int, int, int]]) -> tuple[int, int, int]:
    """Fill the unset parts of (C, H, W): 3 channels if any image has color, else 1; the most common size."""
    channels, height, width = wanted
    if not headers:
        return (channels or 1, height or 1, width or 1)
    if channels is None:
        channels = 3 if any(c == 3 for c, _, _ in headers) else 1
    if height is None or width is None:
        (height, width), _ = Counter((h, w) for _, h, w in headers).most_common(1)[0]
    return channels, height, width


def check_bad(files: FileSet, bad: list[tuple[int, str]], skip_bad: bool) -> None:
    """Stop with one line naming the unreadable files (and their count), unless they are to be skipped."""
    if not bad or skip_bad:
        return
    shown = "; ".join(message for _, message in bad[:SHOWN_BAD_FILES])
    more = f"; and {len(bad) - SHOWN_BAD_FILES} more" if len(bad) > SHOWN_BAD_FILES else ""
    if len(bad) == len(files):
        raise DataError(
            f"none of the {len(files)} images in {files.name} can be read (is --image-dir right? the "
            f"file names are looked up in {files.root}): {shown}{more}"
        )
    raise DataError(
        f"{len(bad)} of {len(files)} images in {files.name} cannot be read: {shown}{more}. "
        "Fix or remove them, or pass --skip-bad-images to leave them out"
    )


def skipped_note(files: FileSet, bad: list[tuple[int, str]]) -> list[str]:
    if not bad:
        return []
    names = ", ".join(files.paths[i] for i, _ in bad[:SHOWN_BAD_FILES])
    more = f" and {len(bad) - SHOWN_BAD_FILES} more" if len(bad) > SHOWN_BAD_FILES else ""
    return [f"{files.name}: skipped {len(bad)} unreadable image(s) (--skip-bad-images): {names}{more}"]


def nbytes(count: int, shape: tuple[int, int, int]) -> int:
    return count * math.prod(shape)


def shape_text(shape: tuple[int, int, int]) -> str:
    return "x".join(str(v) for v in shape)
