"""`trainlab train` and `trainlab lr-find`: a config from preset < --config file < flags, then fit or find_lr."""

from __future__ import annotations

import argparse

from trainlab.cli.launch import check_before_launch, launch_torchrun, process_count
from trainlab.cli.options import (
    DATA_KEYS,
    EXIT_OK,
    RUNTIME_KEYS,
    TRAIN_KEYS,
    Output,
    Parser,
    add_config_flags,
    add_data_options,
    add_output_options,
    add_trust_option,
    cannot_write,
    given,
    name_argument,
    path_argument,
    train_config,
)
from trainlab.cli.resume import refuse_an_existing_run, resume_refusal
from trainlab.errors import TrainlabError
from trainlab.resolution import MAX_LR_STEPS, PRESET_DATASETS, check_lr_range

# what --resume refuses: the flags that change what a run computes (data and device flags are its own again)
RECIPE_KEYS = tuple(key for key in TRAIN_KEYS if key not in (*DATA_KEYS, *RUNTIME_KEYS))


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add train and lr-find to the CLI's subcommands, in that order."""
    add_train_parser(commands)
    add_lr_find_parser(commands)


def add_train_parser(commands: argparse._SubParsersAction) -> None:
    """`trainlab train`: the recipe and data flags, then where and how the run is written."""
    train = commands.add_parser(
        "train",
        help="train a model (defaults: the tutorial's)",
        description="Train a model; flags override --config, which overrides defaults.",
    )
    add_recipe_options(train, "TOML file with any of the flags below as keys")
    run = add_config_flags(train, RECIPE_KEYS, add_data_options(train, all_groups=True))["run"]
    run.add_argument("--run-dir", type=path_argument, help="where the run is written (default: runs/<time stamp>)")
    run.add_argument(
        "--resume", metavar="RUN_DIR", type=path_argument, help="continue a stopped run exactly where it stopped"
    )
    run.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    run.add_argument(
        "--init-from", metavar="CHECKPOINT", type=path_argument, help="start from these weights with a fresh optimizer"
    )
    run.add_argument(
        "--allow-other-data",
        action="store_true",
        help="with --resume: continue even though the data differs from what the run was trained on",
    )
    run.add_argument("--quiet", action="store_true", help="one line per epoch")
    run.add_argument(
        "--nproc",
        metavar="N",
        type=process_count,
        help="train with N processes on this machine (torchrun + DistributedDataParallel; gloo on CPU, one GPU "
        "per process on CUDA); --batch-size is per process",
    )
    run.add_argument(
        "--fast-dev-run",
        metavar="N",
        nargs="?",
        const=2,
        type=dev_run_batches,
        help="smoke test: N batches (default 2) of train, validation and test, then checkpoint, predict and "
        "reports, once; nothing is kept unless --run-dir is given",
    )
    add_trust_option(train)
    add_output_options(train)
    train.set_defaults(handler=cmd_train)


def add_lr_find_parser(commands: argparse._SubParsersAction) -> None:
    """`trainlab lr-find`: train's recipe and data flags, plus the lr range and the plot."""
    lr_find = commands.add_parser(
        "lr-find",
        help="learning-rate range test: plot loss against lr, suggest an lr",
        description="Train a throwaway copy of the model while the lr rises exponentially.",
    )
    add_recipe_options(lr_find, "TOML file with train flags as keys")
    add_config_flags(lr_find, RECIPE_KEYS, add_data_options(lr_find, all_groups=True))
    lr_find.add_argument("--start-lr", type=float, default=1e-7, help="first lr of the range (default: 1e-7)")
    lr_find.add_argument("--end-lr", type=float, default=10.0, help="last lr of the range (default: 10)")
    lr_find.add_argument(
        "--steps", type=int, default=200, help=f"number of steps, 10 to {MAX_LR_STEPS:,} (default: 200)"
    )
    lr_find.add_argument(
        "--out",
        type=path_argument,
        default="lr_find.png",
        help="PNG plot to write (default: lr_find.png; a name not ending in .png: a warning)",
    )
    add_trust_option(lr_find)
    add_output_options(lr_find)
    lr_find.set_defaults(handler=cmd_lr_find)


def dev_run_batches(text: str) -> int:
    """--fast-dev-run N: a whole number of batches, at least one."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of batches >= 1, got {text!r}")
    return int(text)


def add_recipe_options(parser: Parser, config_help: str) -> None:
    parser.add_argument("--config", type=path_argument, help=config_help)
    parser.add_argument(
        "--preset",
        type=name_argument,
        help="named recipe applied before --config and flags: tutorial (the defaults), speedrun (>= 93%% on "
        "Fashion-MNIST, fast), auto (chosen from the data: the default for data other than Fashion-MNIST "
        "when no recipe flag is given)",
    )


def run_lr_finder(
    config, args: argparse.Namespace, out: Output, start_lr: float = 1e-7, end_lr: float = 10.0, steps: int = 200
):
    """The lr range test for `config`, reported on the human stream."""
    from trainlab.data import load_dataset
    from trainlab.training.lr_finder import find_lr

    check_lr_range(start_lr, end_lr, steps)  # before the data is loaded; find_lr checks them too
    data = load_dataset(config, download=not args.no_download)
    result = find_lr(config, data, start_lr=start_lr, end_lr=end_lr, steps=steps)
    out.say(f"lr range test: {len(result.lrs)} steps from {start_lr:g} to {result.lrs[-1]:.3g}")
    out.say(
        f"Suggested lr: {result.suggestion:.3g} ({result.confidence} confidence; steepest descent at "
        f"{result.steepest:.3g})"
    )
    out.say(f"Rule: {result.rule}")
    for note in result.notes:
        out.say(f"Note: {note}")
    return result


def wants_auto_lr(args: argparse.Namespace) -> bool:
    """--lr auto, or lr = "auto" in the --config file without an --lr flag."""
    from trainlab.config import read_config_file

    if args.lr is not None:
        return args.lr == "auto"
    return bool(args.config) and read_config_file(args.config).get("lr") == "auto"


def cmd_lr_find(args: argparse.Namespace, out: Output) -> int:
    from trainlab.fileio import check_replaceable
    from trainlab.reports.plots import lr_finder_plot

    config = train_config(args)
    check_replaceable(args.out, "PNG image")  # before the range test, not after its minutes
    result = run_lr_finder(config, args, out, args.start_lr, args.end_lr, args.steps)
    try:
        path = lr_finder_plot(result, args.out)
    except OSError as exc:
        raise cannot_write(args.out, exc) from None
    out.say(f"Plot: {path}")
    out.result({**result.to_dict(), "plot": str(path)})
    return EXIT_OK


def resumed_config(args: argparse.Namespace):
    """--resume RUN_DIR: the run's own config; flags that would change what it computes are refused."""
    from trainlab.training import load_run_config

    refusal = resume_refusal(args, RECIPE_KEYS)  # names the run and the commands that work instead
    if refusal:
        raise TrainlabError(refusal)
    return load_run_config(args.resume, args.trust_model_code).replace(**given(args, ("tracking_uri",)))


def fast_dev_run(config, args: argparse.Namespace, out: Output, reporter) -> int:
    """trainlab train --fast-dev-run [N]: every stage once on N batches."""
    from trainlab.devrun import fast_dev_run as run_once

    summary = run_once(
        config,
        args.fast_dev_run,
        run_dir=args.run_dir,
        overwrite=args.overwrite,
        download=not args.no_download,
        reporter=reporter,
    )
    out.result(summary)
    return EXIT_OK


def cmd_train(args: argparse.Namespace, out: Output) -> int:
    """trainlab train: a fresh, resumed or smoke-test run in this process, or --nproc N processes."""
    if args.nproc and args.nproc > 1:
        return launch_processes(args)
    if args.fast_dev_run is not None and (
        args.resume or args.init_from or args.lr == "auto" or args.time_budget is not None
    ):
        raise TrainlabError("--fast-dev-run runs a fresh short run; drop --resume/--init-from/--lr auto/--time-budget")
    if args.resume:
        config, run_dir = resumed_config(args), args.resume
    else:
        config, run_dir = fresh_config(args, out), args.run_dir
    from trainlab.reports.console import ConsoleReporter

    reporter = ConsoleReporter(out.human, quiet=args.quiet)  # tracked.fit adds TensorBoard and the tracker
    if args.allow_other_data and not args.resume:
        raise TrainlabError("--allow-other-data is for --resume RUN_DIR only")
    if args.fast_dev_run is not None:
        return fast_dev_run(config, args, out, reporter)
    return fit_run(config, run_dir, args, out, reporter)


def launch_processes(args: argparse.Namespace) -> int:
    """trainlab train --nproc N: check everything once in this process, then hand the command to torchrun."""
    # bad values and a missing run are refused here, once, before any process starts
    config = resumed_config(args) if args.resume else train_config(args)
    if args.fast_dev_run is not None or (args.lr == "auto") or config.time_budget is not None:
        raise TrainlabError(
            "--nproc: --fast-dev-run, --lr auto and a time budget (--time-budget, or the preset's) run in one "
            "process; drop --nproc, or give --epochs N in place of the budget"
        )
    if config.recipe == "auto":
        raise TrainlabError(
            "--nproc: the recipe chosen from the data (--preset auto, the default for your own images) is "
            "chosen in one process; drop --nproc, or give the recipe's flags (e.g. --model cnn --epochs 20)"
        )
    config.per_process_batch_size(args.nproc)
    if args.run_dir and not args.resume:
        refuse_an_existing_run(args, RECIPE_KEYS)
    check_before_launch(args, config)
    return launch_torchrun(args.nproc, args.argv)


def fresh_config(args: argparse.Namespace, out: Output):
    """A new run's config from the flags; an existing --run-dir is refused and --lr auto runs the range test."""
    config = train_config(args)  # bad values are refused here, before torch is imported
    if args.run_dir and args.fast_dev_run is None:
        refuse_an_existing_run(args, RECIPE_KEYS)
    if PRESET_DATASETS.get(args.preset or "", config.dataset) != config.dataset:
        out.say(
            f"--preset {args.preset} is a recipe for {PRESET_DATASETS[args.preset]}: on --dataset "
            f"{config.dataset} its flips, shifts and erasing are chosen from the data (as --preset auto does)"
        )
    if wants_auto_lr(args):
        config = config.replace(lr=run_lr_finder(config, args, out).suggestion)
        out.say(f"Training with lr {config.lr:.3g} (--lr auto)")
    return config


def fit_run(config, run_dir, args: argparse.Namespace, out: Output, reporter) -> int:
    """Train (or resume) the run in `run_dir` with its reports, then print the summary."""
    from trainlab.training.budget import Clock, process_seconds
    from trainlab.tuning.tracked import fit

    summary = fit(
        config,
        run_dir=run_dir,
        resume=bool(args.resume),
        overwrite=args.overwrite,
        init_from=args.init_from,
        download=not args.no_download,
        reporter=reporter,
        allow_other_data=args.allow_other_data,
        reports=True,
        clock=(clock := Clock(process_seconds())),
        on_interrupt="raise",  # the exit status says how the run ended (130, 143)
    )
    if "time_budget" in summary:
        out.say(f"Time budget: {clock():.1f} s of {summary['time_budget']['time_budget']:g} s used")
    out.result(summary)
    return EXIT_OK
