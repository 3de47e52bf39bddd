"""Where a run's images come from, as TrainConfig checks it without torch: a built-in data set, a CSV of file
names (--annotations) or a class folder (--image-dir), and the image sizes and decoding processes each allows."""

from __future__ import annotations

from typing import Any

from trainlab.datasets_registry import BUILTINS, DATASETS, FILE_DATASETS
from trainlab.errors import ConfigError
from trainlab.validation import check_choice, check_integer, check_number

MAX_IMAGE_SIZE = 4096  # pixels per side
BUILTIN_IMAGE_SIDES = {name: dataset.side for name, dataset in BUILTINS.items()}  # pixels
MAX_WORKERS = 256  # decoding processes; each is a forked copy of this one


def check_data_source(config: Any) -> None:
    """The keys that say where the images come from: a known data set and the paths and sizes it takes."""
    check_choice("dataset", config.dataset, DATASETS)
    if config.data_dir is not None and (not isinstance(config.data_dir, str) or not config.data_dir):
        raise ConfigError(
            f"data_dir must be a folder path, got {config.data_dir!r}; leave it out for $TRAINLAB_DATA_DIR or ./data"
        )
    for name in ("annotations", "test_annotations", "image_dir", "relabel"):
        value = getattr(config, name)
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigError(f"{name} must be a file or folder path, got {value!r}")
    if config.image_size is not None:
        check_integer("image_size", config.image_size, minimum=1, maximum=None)
        if config.image_size > MAX_IMAGE_SIZE:
            raise ConfigError(f"image_size must be <= {MAX_IMAGE_SIZE} pixels, got {config.image_size}")
    if config.channels is not None and (isinstance(config.channels, bool) or config.channels not in (1, 3)):
        raise ConfigError(f"channels must be 1 (gray) or 3 (RGB), got {config.channels!r}")
    if not isinstance(config.skip_bad_images, bool):
        raise ConfigError(f"skip_bad_images must be true or false, got {config.skip_bad_images!r}")
    if config.workers is not None:
        check_integer("workers", config.workers, minimum=0, maximum=MAX_WORKERS)
    if config.memory_budget_mb is not None:
        check_number("memory_budget_mb", config.memory_budget_mb, minimum=0.0)
    if config.dataset == "csv" and not (config.annotations or config.test_annotations):
        raise ConfigError(
            "--dataset csv needs --annotations FILE.csv (rows of `file name, label`, e.g. "
            "`tshirt1.jpg, 0`) and --image-dir DIR"
        )
    if config.dataset == "folder" and not config.image_dir:
        raise ConfigError(
            "--dataset folder needs --image-dir ROOT (ROOT/<class>/*.png, or ROOT/train/<class>/... "
            "and ROOT/test/<class>/...)"
        )
    if config.dataset != "csv" and (config.annotations or config.test_annotations):
        raise ConfigError(f"--annotations/--test-annotations are for --dataset csv, not {config.dataset}")
    if config.dataset not in FILE_DATASETS:
        given = [name for name in ("image_dir", "image_size", "channels") if getattr(config, name) is not None]
        if given:
            flags = "/".join("--" + name.replace("_", "-") for name in given)
            raise ConfigError(f"{flags}: only for --dataset csv or folder; {config.dataset} has a fixed image size")


def check_augment_padding(config: Any) -> None:
    """A crop shifted by the image's own side or more can be all padding: refused where the side is known."""
    if not config.augment:
        return
    side = BUILTIN_IMAGE_SIDES.get(config.dataset, config.image_size)
    if side is None:  # csv/folder at their most common size: bounded by the largest size there is
        side = MAX_IMAGE_SIZE
    if config.augment_padding >= side:
        raise ConfigError(
            f"augment_padding must be smaller than the images' {side} pixels, got "
            f"{config.augment_padding} (2 to 4 is usual)"
        )
