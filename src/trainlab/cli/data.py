"""`trainlab data show|info`: a look at a data set, with the same data flags as train."""

from __future__ import annotations

import argparse
from typing import Any

from trainlab.cli.options import (
    DATA_KEYS,
    EXIT_OK,
    Output,
    Parser,
    add_data_options,
    add_output_options,
    cannot_write,
    given,
    path_argument,
)
from trainlab.errors import TrainlabError

SPLIT_KEYS = ("val_split", "seed", "augment", "augment_padding", "augment_erasing")  # as training splits and augments


def add_commands(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser("data", help="look at a data set: sample grid (show), counts and statistics (info)")
    actions = data.add_subparsers(dest="data_command", metavar="ACTION", parser_class=Parser, required=True)
    for name, text in (
        ("show", "draw random samples with their class names into a PNG"),
        ("info", "count images per class and split; image size, channels, pixel mean/std"),
    ):
        action = actions.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        action.add_argument(
            "--config", type=path_argument, help="TOML file (e.g. a run's config.toml) with data flags as keys"
        )
        add_data_options(action, extra_keys=SPLIT_KEYS)
        if name == "show":
            action.add_argument(
                "--split",
                choices=("train", "val", "test"),
                default="train",
                help="which split to draw from (default: train)",
            )
            action.add_argument("--rows", type=int, default=3, help="rows of images (default: 3)")
            action.add_argument("--cols", type=int, default=3, help="columns of images (default: 3)")
            action.add_argument(
                "--out",
                type=path_argument,
                default="samples.png",
                help="PNG file to write (default: samples.png; a name not ending in .png: a warning)",
            )
        add_output_options(action)
        action.set_defaults(handler=cmd_data_show if name == "show" else cmd_data_info)


def data_command_config(args: argparse.Namespace):
    """--config file < flags, for `trainlab data`: the data options plus split and augmentation settings."""
    from trainlab.config import TrainConfig, read_config_file

    values: dict[str, Any] = read_config_file(args.config) if args.config else {}
    values.update(given(args, (*DATA_KEYS, *SPLIT_KEYS)))
    return TrainConfig.from_dict(values, source=args.config or "flags")


def data_command_splits(config, args: argparse.Namespace) -> tuple[dict, tuple[str, ...], list[str]]:
    """{split: ImageData} as training sees them (train without its validation part), the classes, and notes."""
    from trainlab.data import load_splits
    from trainlab.data.file_datasets import NoTestSet
    from trainlab.data.memory import stratified_split

    try:
        splits, notes = load_splits(config, ("train", "test"), download=not args.no_download)
    except NoTestSet:
        splits, notes = load_splits(config, ("train",), download=not args.no_download)
        notes.append("no test set: give --test-annotations (csv), ROOT/train and ROOT/test (folder), or --val-split")
    if config.val_split:
        splits["train"], splits["val"] = stratified_split(splits["train"], config.val_split, config.seed)
        splits = {name: splits[name] for name in ("train", "val", "test") if name in splits}
    return splits, splits["train"].classes, notes


def cmd_data_show(args: argparse.Namespace, out: Output) -> int:
    from trainlab.data.augment import Augmentation
    from trainlab.reports.preview import figure_size, sample_grid

    if args.rows < 1 or args.cols < 1 or args.rows * args.cols > 400:
        raise TrainlabError(f"--rows and --cols must be >= 1 with at most 400 images, got {args.rows}x{args.cols}")
    config = data_command_config(args)
    splits, _, notes = data_command_splits(config, args)
    if args.split not in splits:
        how = (
            "--split val needs --val-split (e.g. 0.1)"
            if args.split == "val"
            else "give --test-annotations (csv), ROOT/train and ROOT/test (folder), or --val-split (e.g. 0.1)"
        )
        raise TrainlabError(f"there is no {args.split} split here; {how}")
    data = splits[args.split]
    if len(data) == 0:
        raise TrainlabError(f"the {args.split} split is empty")
    side = min(data.image_shape[1:])
    if config.augment and config.augment_padding >= side:  # csv/folder: the images' size is known only now
        raise TrainlabError(
            f"augment_padding must be smaller than the images' {side} pixels, got "
            f"{config.augment_padding} (2 to 4 is usual)"
        )
    augmentation = (
        Augmentation(config.augment_padding, config.augment_flip, config.augment_erasing) if config.augment else None
    )
    try:
        path = sample_grid(data, args.out, args.rows, args.cols, config.seed, augmentation)
    except OSError as exc:
        raise cannot_write(args.out, exc) from None
    for note in notes:
        out.say(note)
    width, height = figure_size(args.rows, args.cols * (2 if augmentation else 1))
    out.say(
        f"Wrote {args.rows}x{args.cols} {args.split} samples{' with their augmented versions' if augmentation else ''}"
        f" to {path} ({width}x{height} pixels)"
    )
    out.result(
        {
            "out": str(path),
            "split": args.split,
            "rows": args.rows,
            "cols": args.cols,
            "augment": bool(augmentation),
            "width": width,
            "height": height,
        }
    )
    return EXIT_OK


def cmd_data_info(args: argparse.Namespace, out: Output) -> int:
    from trainlab.data.streaming import is_streaming
    from trainlab.reports.preview import format_summary, split_summary

    config = data_command_config(args)
    splits, classes, notes = data_command_splits(config, args)
    summary = {
        "dataset": config.dataset,
        "classes": list(classes),
        "splits": {name: split_summary(data) for name, data in splits.items()},
        "storage": "streamed from files" if any(is_streaming(d) for d in splits.values()) else "in memory",
        "notes": notes,
    }
    out.say(format_summary(summary))
    out.result(summary)
    return EXIT_OK
