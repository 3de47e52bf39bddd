"""Which image files make a data set and their labels: a CSV of (file name, label) rows, or class folders."""

from __future__ import annotations

import csv
import ntpath
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISLNK

from trainlab.errors import DataError
from trainlab.fileio import read_text_file

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm", ".pgm")
INTEGER = re.compile(r"[+-]?\d+")
WHOLE_NUMBER = re.compile(r"([+-]?\d+)(?:\.0*)?")  # 3, 3.0 and 3. are class 3: a spreadsheet writes 3 as 3.0
DELIMITERS = (",", ";", "\t")  # the first of these in the first row separates the columns (, ; are locale defaults)
MAX_CLASSES = 10_000  # integer labels implying more classes than this are refused as typos
SPARSE_LABEL_MINIMUM = 100  # a largest label above this and >= 2x the distinct labels is taken for a typo


@dataclass
class FileSet:
    """Labelled image files below one folder, in a fixed order, with what is needed to check them."""

    name: str  # for messages and cache names: "labels.csv", "root/train"
    root: Path  # the image directory every path is inside of
    paths: list[str]  # relative to root, "/"-separated
    raw_labels: list[str]  # as written: an integer or a class name
    where: list[str]  # per file, for messages: "labels.csv line 7" or the folder
    source: Path  # the CSV file or the folder read (names the cache)
    labels_are_names: bool = False  # class folders: "100" names a class, it is not class number 100

    def __len__(self) -> int:
        return len(self.paths)

    def absolute(self, index: int) -> str:
        return str(self.root / self.paths[index])

    def stats(self) -> list[tuple[int, int] | None]:
        """(size in bytes, modification time in ns) of every file; None for a missing one.

        A file reached through a symbolic link (of the file or a folder) that leads out of root is refused.
        """
        found: list[tuple[int, int] | None] = []
        root = os.path.realpath(self.root)
        real_folders: dict[str, str] = {}  # folder -> its real path: most files share a few folders
        for index in range(len(self.paths)):
            path = self.absolute(index)
            try:  # lstat: one system call for the usual file, which is no link (a cached start stats every file)
                stat = os.lstat(path)
                linked = S_ISLNK(stat.st_mode)
                if linked:
                    stat = os.stat(path)
            except OSError:
                found.append(None)
                continue
            folder = os.path.dirname(path)
            real = real_folders.get(folder)
            if real is None:  # not setdefault: its argument, a realpath, would be computed for every file
                real = real_folders[folder] = os.path.realpath(folder)
            if linked:
                real = os.path.dirname(os.path.realpath(path))
            if real != root and not real.startswith(root + os.sep):
                raise DataError(
                    f"{self.where[index]}: {self.paths[index]} leads out of the image directory "
                    f"{self.root} through a symbolic link; links out of the data folder are not followed"
                )
            found.append((stat.st_size, stat.st_mtime_ns))
        return found


def inside_path(name: str, root: Path, where: str) -> str:
    """name as a normalised relative path, refusing absolute paths and ones that leave root (`../`)."""
    if "\x00" in name:  # no file system allows one; os.stat would fail with ValueError
        raise DataError(f"{where}: {name!r} holds a NUL byte, which no file name can; fix the row")
    portable = name.replace("\\", "/")
    if not portable or portable.startswith("/") or ntpath.splitdrive(name)[0] or ntpath.isabs(name):
        raise DataError(f"{where}: {name!r} is an absolute path; give paths relative to the image directory {root}")
    normal = posixpath.normpath(portable)
    if normal == ".." or normal.startswith("../"):
        raise DataError(f"{where}: {name!r} points outside the image directory {root}; paths must stay inside it")
    if normal == ".":
        raise DataError(f"{where}: {name!r} is not a file name")
    return normal


def _looks_like_header(fields: list[str], root: Path) -> bool:
    """A first row such as `file_name,label`: no image file by that name and no image file extension."""
    name = fields[0]
    if "\x00" in name:  # a damaged row, refused by inside_path, rather than a header
        return False
    return not name.lower().endswith(IMAGE_EXTENSIONS) and not (root / name).is_file()


def check_image_dir(root: Path) -> None:
    """Refuse an --image-dir that is missing or is not a folder, saying which."""
    if not root.is_dir():
        problem = "is a file, not a folder" if root.exists() else "does not exist"
        raise DataError(f"image directory {root} {problem} (--image-dir)")


def delimiter_of(lines: list[str]) -> str:
    """The column separator: a comma, else a semicolon or tab when the first row has one and no comma."""
    first = next((line for line in lines if line.strip()), "")
    return next((mark for mark in DELIMITERS if mark in first), ",")


def read_csv_annotations(csv_path: str | os.PathLike, image_dir: str | os.PathLike | None) -> FileSet:
    """The rows of an annotations CSV (`file name, label`, optional header; columns separated by commas, or
    semicolons or tabs) as a FileSet; errors name the line."""
    csv_path = Path(csv_path)
    root = Path(image_dir) if image_dir else csv_path.parent
    check_image_dir(root)
    text = read_text_file(csv_path, "annotations file", DataError, encoding="utf-8-sig")
    paths, labels, where = [], [], []
    lines = text.splitlines()
    reader = csv.reader(lines, delimiter=delimiter_of(lines))
    first = True
    try:
        for row in reader:
            fields = [field.strip() for field in row]
            if not any(fields):
                continue
            line = f"{csv_path} line {reader.line_num}"
            if first:
                first = False
                if _looks_like_header(fields, root):
                    continue
            if len(fields) < 2 or not fields[0] or not fields[1]:
                raise DataError(f"{line}: expected two columns `file name, label`, got {','.join(row)!r}")
            paths.append(inside_path(fields[0], root, line))
            labels.append(fields[1])
            where.append(line)
    except csv.Error as exc:
        raise DataError(f"{csv_path} line {reader.line_num}: not valid CSV ({exc})") from None
    if not paths:
        raise DataError(f"annotations file {csv_path} has no rows; expected lines such as `tshirt1.jpg, 0`")
    return FileSet(csv_path.name, root, paths, labels, where, csv_path)


def read_class_folders(folder: str | os.PathLike) -> FileSet:
    """Images in folder/<class>/... (the ImageFolder layout): the class is the first folder below `folder`."""
    folder = Path(folder)
    check_image_dir(folder)
    paths, labels, where = [], [], []
    class_folders: dict[str, str] = {}
    for relative in image_paths_under(folder):
        label, below, _ = relative.partition("/")
        if not below:
            continue  # loose files beside the class folders belong to no class
        paths.append(relative)
        labels.append(label)
        if label not in class_folders:
            class_folders[label] = str(folder / label)
        where.append(class_folders[label])
    if not paths:
        raise DataError(
            f"no images found in class folders under {folder}; expected {folder}/<class>/<image>.png "
            f"(extensions: {', '.join(IMAGE_EXTENSIONS)})"
        )
    return FileSet(str(folder), folder, paths, labels, where, folder, labels_are_names=True)


def derive_classes(files: FileSet) -> tuple[str, ...]:
    """Class names from the labels: 0..max when every CSV label is a whole number, else the sorted names.

    Class folder names are always names ("100" and "200" are two classes), sorted as numbers when all are.
    """
    labels = files.raw_labels
    if files.labels_are_names:
        names = set(labels)
        numeric = all(INTEGER.fullmatch(label) for label in labels)
        return tuple(sorted(names, key=lambda name: (int(name), name))) if numeric else tuple(sorted(names))
    numbers = [whole_number(label) for label in labels]
    if None in numbers:
        check_one_spelling(files)
        return tuple(sorted(set(labels)))
    values: list[int] = numbers  # type: ignore[assignment]
    lowest, highest = min(values), max(values)
    if lowest < 0:
        where = files.where[values.index(lowest)]
        raise DataError(f"{where}: label {lowest} is negative; integer labels are class numbers 0, 1, 2, ...")
    distinct = len(set(values))
    if highest >= MAX_CLASSES or (highest > SPARSE_LABEL_MINIMUM and highest >= 2 * distinct):
        where = files.where[values.index(highest)]
        reason = (
            f"more than the {MAX_CLASSES:,} classes trainlab accepts"
            if highest >= MAX_CLASSES
            else f"but only {distinct} different labels appear"
        )
        raise DataError(
            f"{where}: label {highest} would make {highest + 1:,} classes, {reason}; is it a typo? "
            "Integer labels are class numbers 0, 1, 2, ...: fix the label, or use class names"
        )
    return tuple(str(value) for value in range(highest + 1))


def whole_number(label: str) -> int | None:
    """A label's class number when it is a whole number (3, +3, 3.0), else None."""
    found = WHOLE_NUMBER.fullmatch(label)
    return int(found.group(1)) if found else None


def check_one_spelling(files: FileSet) -> None:
    """Class names that are one number written two ways (3 and 3.0 among names) are refused, naming both lines."""
    seen: dict[float, int] = {}
    for index, label in enumerate(files.raw_labels):
        try:
            value = float(label)
        except ValueError:
            continue
        first = seen.setdefault(value, index)
        if files.raw_labels[first] != label:
            raise DataError(
                f"{files.where[index]}: label {label!r} is the number {files.raw_labels[first]!r} of "
                f"{files.where[first]} written another way, and class names are compared as written; "
                "write each label one way"
            )


def label_indices(files: FileSet, classes: tuple[str, ...]) -> list[int]:
    """Each label as an index into classes: by name, else as a class number; unknown ones are errors.

    A numbered class folder is a class number only against classes with other names (a checkpoint's
    "T-shirt/top", ...): against numbered classes ("100", "200"), folder "1" is a name, and unknown. A "/" in
    a class name may be written "-" or "_" (folder T-shirt-top is class T-shirt/top).
    """
    lookup = {name: index for index, name in enumerate(classes)}
    for index, name in enumerate(classes):  # "T-shirt/top" cannot name a folder: T-shirt-top or T-shirt_top can
        for spelling in (name.replace("/", "-"), name.replace("/", "_")):
            lookup.setdefault(spelling, index)
    numbers_allowed = not files.labels_are_names or not all(INTEGER.fullmatch(name) for name in classes)
    indices = []
    for label, where in zip(files.raw_labels, files.where, strict=True):
        index = lookup.get(label)
        number = whole_number(label) if numbers_allowed else None
        if index is None and number is not None:
            index = number
            if not 0 <= index < len(classes):
                raise DataError(
                    f"{where}: label {index} is out of range: there are {len(classes)} classes (0-{len(classes) - 1})"
                )
        if index is None:
            shown = ", ".join(classes[:12]) + (", ..." if len(classes) > 12 else "")
            slashed = any("/" in name for name in classes)
            slash = " (a / in a class name is written - or _ in a folder name)" if slashed else ""
            raise DataError(f"{where}: unknown class {label!r}; known classes: {shown}{slash}")
        indices.append(index)
    return indices


def image_paths_under(folder: Path) -> list[str]:
    """Image files (by extension) under folder, recursively, as "/"-separated paths relative to it, sorted as
    paths (folder by folder); hidden files and folders are left out.

    Linked folders are not followed (a link to `..` would list every image again, under another class);
    a linked image file is read only when it points inside folder. One scandir per folder and no system call
    per file (the entries' types come with the listing): a cached run lists every file before its first step.
    """
    root = os.path.realpath(folder)
    found: list[str] = []
    pending = [("", str(folder))]
    while pending:
        prefix, directory = pending.pop()
        try:
            with os.scandir(directory) as listing:
                entries = list(listing)
        except OSError:  # an unreadable folder below is left out, as os.walk leaves it out
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():  # a link to a folder is not followed, and not an image either
                if not entry.is_symlink():
                    pending.append((f"{prefix}{entry.name}/", entry.path))
                continue
            if not entry.name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            if entry.is_symlink():
                target = os.path.realpath(entry.path)
                if target != root and not target.startswith(root + os.sep):
                    raise DataError(
                        f"{Path(entry.path)}: a link to {target}, outside the data folder {folder}; links out of "
                        "the data folder are not followed: copy the file into it instead"
                    )
            found.append(prefix + entry.name)
    return sorted(found, key=lambda name: name.split("/"))  # the order of the paths themselves, as Path sorts
