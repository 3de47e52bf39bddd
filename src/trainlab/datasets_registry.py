"""Every data set trainlab knows by name: the built-in sets' image shapes and class names, and the kinds of the
user's own image files.

Plain names and tuples, no torch: config.py and every command's --help read them without importing torch.
data/ adds where each built-in set's files live and how they are read; every other list of data set names
(config's choices, `serve --dataset`, a plain state_dict's classes) is made from this one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuiltinDataset:
    """A built-in data set: its name, image shape and class names in label order."""

    name: str
    shape: tuple[int, int, int]  # (channels, height, width), pixels
    classes: tuple[str, ...]

    @property
    def side(self) -> int:
        """Pixels per side (the built-in sets are square)."""
        return self.shape[1]


DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")  # MNIST's classes

BUILTINS = {
    dataset.name: dataset
    for dataset in (
        BuiltinDataset(
            "fashion-mnist",
            (1, 28, 28),
            ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        ),
        BuiltinDataset(
            "mnist",
            (1, 28, 28),
            tuple(f"{digit} - {word}" for digit, word in enumerate(DIGIT_WORDS)),
        ),
        BuiltinDataset("kmnist", (1, 28, 28), ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")),
        BuiltinDataset(
            "cifar10",
            (3, 32, 32),
            ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        ),
    )
}
BUILTIN_NAMES = tuple(BUILTINS)
FILE_DATASETS = ("csv", "folder")  # the user's own image files: a CSV of rows, or class folders
DATASETS = (*BUILTIN_NAMES, *FILE_DATASETS)
