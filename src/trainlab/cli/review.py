"""`trainlab review`: the training and test images most likely mislabelled, duplicated, blank or unreadable."""

from __future__ import annotations

import argparse
from pathlib import Path

from trainlab.cli.options import EXIT_OK, Output, add_output_options, add_trust_option, path_argument


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add review to the CLI's subcommands."""
    review = commands.add_parser(
        "review",
        help="find the likeliest bad labels, duplicates and blank images of a run's data",
        description="Rank a run's training and test images by how likely their labels are wrong (out-of-fold "
        "confident learning), with exact and near duplicates and blank or unreadable images; writes review.csv "
        "(edit it, then `trainlab train ... --relabel review.csv`) and review.png.",
    )
    review.add_argument("run", metavar="RUN", type=path_argument, help="a run directory")
    review.add_argument(
        "--folds", type=int, default=3, help="out-of-fold models for the training images, 2 to 20 (default: 3)"
    )
    review.add_argument(
        "--fold-epochs",
        type=int,
        help="epochs each fold model trains with the run's recipe (default: the run's epochs; a review then costs "
        "about folds-1 times the run's training)",
    )
    review.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="average the out-of-fold probabilities of N differently seeded fold splits, 1 to 20 (default: 1)",
    )
    review.add_argument("--top", type=int, help="keep only the N surest suspects (default: all)")
    review.add_argument("--out", type=path_argument, help="folder for review.csv and review.png (default: RUN/review)")
    add_trust_option(review)
    add_output_options(review)
    review.set_defaults(handler=cmd_review)


def cmd_review(args: argparse.Namespace, out: Output) -> int:
    from trainlab.layout import REVIEW_CSV, REVIEW_PNG
    from trainlab.reviewing import check_review_options, review

    check_review_options(args.folds, args.top, args.fold_epochs, args.repeats)  # before any data is read
    suspects = review(
        args.run,
        args.folds,
        args.top,
        args.out,
        args.fold_epochs,
        say=out.say,
        trust_model_code=args.trust_model_code,
        repeats=args.repeats,
    )
    folder = Path(args.out) if args.out is not None else Path(args.run) / REVIEW_CSV.parent
    csv_path, png_path = folder / REVIEW_CSV.name, folder / REVIEW_PNG.name
    kinds: dict[str, int] = {}
    for suspect in suspects:
        kinds[suspect.kind] = kinds.get(suspect.kind, 0) + 1
    for suspect in suspects[:10]:
        suggestion = suspect.suggested or "keep?"
        out.say(
            f"{suspect.confidence:6.1%}  {suspect.split:5}  {suspect.file}: {suspect.given} -> {suggestion} "
            f"({suspect.reason})"
        )
    counted = ", ".join(f"{count} {kind}" for kind, count in kinds.items()) or "none"
    out.say(f"{len(suspects)} suspect(s): {counted}; all in {csv_path}, the first ones in {png_path}")
    out.result(
        {
            "suspects": [suspect.to_dict() for suspect in suspects],
            "counts": kinds,
            "csv": str(csv_path),
            "png": str(png_path),
            "folds": args.folds,
            "repeats": args.repeats,
        }
    )
    return EXIT_OK
