"""--relabel CSV: a reviewed list of files whose labels change (or that are dropped), applied as the data loads.

The CSV is the one `trainlab review` writes (file, split, given, suggested, confidence, reason), edited by the
user: the `label` column when the header has one, else `suggested`, is the new label of each listed file: a
class name or number, `drop` (the image leaves its split), or empty (the label stays as given). `split` says
which split the file is in (default: train). Built-in sets name their images `train[1234]`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import torch

from trainlab.data.annotations import delimiter_of, whole_number
from trainlab.data.memory import ImageData
from trainlab.errors import DataError
from trainlab.fileio import read_text_file

DROP = "drop"  # the label that removes an image from its split
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Change:
    """One row of a --relabel CSV: the file, its split, its new label (DROP, a class, or "" to keep it)."""

    file: str
    split: str
    label: str
    where: str  # "review.csv line 7", for messages


def image_names(data: ImageData, split: str) -> tuple[str, ...]:
    """Each image's name: its file for csv/folder data, `split[index]` for built-in sets."""
    if data.names is not None:
        return data.names
    return tuple(f"{split}[{index}]" for index in range(len(data)))


def read_changes(path: str | Path) -> list[Change]:
    """The rows of a --relabel CSV; a missing column, an unknown split or a file listed twice is one error."""
    path = Path(path)
    text = read_text_file(path, "--relabel file", DataError, encoding="utf-8-sig")
    lines = text.splitlines()
    reader = csv.reader(lines, delimiter=delimiter_of(lines))
    header = [name.strip().lower() for name in next(reader, [])]
    column = "label" if "label" in header else "suggested"
    if "file" not in header or column not in header:
        raise DataError(
            f"--relabel file {path}: its first row must name the columns `file` and `suggested` (or `label`), "
            f"as `trainlab review` writes them; got {','.join(header) or 'nothing'}"
        )
    changes: dict[tuple[str, str], Change] = {}
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        cells = dict(zip(header, (cell.strip() for cell in row), strict=False))
        where = f"{path} line {reader.line_num}"
        change = Change(cells.get("file", ""), cells.get("split") or "train", cells.get(column, ""), where)
        if not change.file:
            raise DataError(f"{where}: no file name in the `file` column")
        if change.split not in SPLITS:
            raise DataError(f"{where}: unknown split {change.split!r}; the `split` column holds train or test")
        earlier = changes.get((change.split, change.file))
        if earlier is not None and earlier.label != change.label:
            raise DataError(
                f"{where}: {change.file} is listed again with another label ({change.label!r}, and "
                f"{earlier.label!r} on {earlier.where}); keep one row per file"
            )
        changes[(change.split, change.file)] = change
    return list(changes.values())


def class_index(change: Change, classes: tuple[str, ...]) -> int:
    """The new label's class: by name, else as a class number; anything else is one error naming the row."""
    if change.label in classes:
        return classes.index(change.label)
    number = whole_number(change.label)
    if number is not None and 0 <= number < len(classes):
        return number
    shown = ", ".join(classes[:12]) + (", ..." if len(classes) > 12 else "")
    raise DataError(
        f"{change.where}: unknown label {change.label!r} for {change.file}; give a class ({shown}), "
        f"{DROP!r} to leave the image out, or an empty cell to keep its label"
    )


def relabelled(data: ImageData, split: str, changes: list[Change]) -> ImageData:
    """`data` with the changes of its split applied: new labels, dropped images left out."""
    mine = [change for change in changes if change.split == split]
    if not mine:
        return data
    position = {name: index for index, name in enumerate(image_names(data, split))}
    labels = data.labels.clone()
    keep = torch.ones(len(data), dtype=torch.bool)
    for change in mine:
        index = position.get(change.file)
        if index is None:
            raise DataError(
                f"{change.where}: {change.file} is not in the {split} images of this data set; "
                "check the file name and the `split` column (a review's CSV names the files as the data does)"
            )
        if change.label.lower() == DROP:
            keep[index] = False
        elif change.label:
            labels[index] = class_index(change, data.classes)
    if not keep.any():
        raise DataError(f"--relabel leaves no {split} images: every one of them is dropped")
    changed = ImageData(data.images, labels.to(data.labels.device), data.classes, image_names(data, split))
    if keep.all():
        return changed
    return changed.select(torch.nonzero(keep).flatten())


def apply_relabel(loaded: dict[str, ImageData], path: str | Path) -> dict[str, ImageData]:
    """The loaded splits with a --relabel CSV's changes applied (rows for a split not loaded are left aside)."""
    changes = read_changes(path)
    return {split: relabelled(data, split, changes) for split, data in loaded.items()}
