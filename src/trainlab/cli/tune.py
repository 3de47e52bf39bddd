"""`trainlab tune`: train's flags for the base config, a search space, and an Optuna study to run it in."""

from __future__ import annotations

import argparse
import math

from trainlab.cli.options import (
    EXIT_OK,
    Output,
    add_config_flags,
    add_data_options,
    add_output_options,
    path_argument,
    train_config,
)
from trainlab.cli.train import RECIPE_KEYS, add_recipe_options
from trainlab.errors import TrainlabError

TUNE_HELP = """Search hyperparameters with Optuna: each trial is a trainlab run under --run-dir, scored on the
validation split, pruned early when it falls behind. Rerun the same command to continue a stopped study;
run it in several shells (or machines sharing --storage) to run trials at once."""


def add_commands(commands: argparse._SubParsersAction) -> None:
    tune = commands.add_parser("tune", help="search hyperparameters with Optuna", description=TUNE_HELP)
    add_recipe_options(tune, "TOML file with train flags as keys and a [search] table")
    add_config_flags(tune, RECIPE_KEYS, add_data_options(tune, all_groups=True))
    study = tune.add_argument_group("study")
    study.add_argument(
        "--search",
        metavar="KEY=SPEC",
        nargs="+",
        action="extend",
        help="a config key and its range LOW:HIGH (uniform), LOW:HIGH:log, or choices A,B,C; "
        "e.g. lr=1e-4:1e-1:log batch_size=64,128,256 optimizer=sgd,adam weight_decay=0:1e-3",
    )
    study.add_argument("--trials", type=int, default=20, help="trials in the study in all (default: 20)")
    study.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    study.add_argument(
        "--metric",
        default="val_accuracy",
        help="what trials are scored on: val_accuracy or val_loss (default: val_accuracy)",
    )
    study.add_argument("--pruner", default="median", help="median, hyperband or none (default: median)")
    study.add_argument("--run-dir", type=path_argument, help="the study's folder (default: runs/tune-<time stamp>)")
    study.add_argument("--storage", metavar="URL", help="SQLAlchemy database URL (default: sqlite:///RUN_DIR/study.db)")
    study.add_argument("--study-name", help="the study's name in the database (default: the folder's name)")
    tune.add_argument(
        "--trust-model-code",
        action="store_true",
        help="build a package.module:Class model that the config file or the study folder names (trusted files only)",
    )
    add_output_options(tune)
    tune.set_defaults(handler=cmd_tune)


def search_from(args: argparse.Namespace):
    """--search, else the config file's [search] table, else None (continue the study as recorded)."""
    from trainlab.config import read_config_file

    if args.search:
        return args.search
    if args.config:
        table = read_config_file(args.config).get("search")
        if table is not None:
            if not isinstance(table, dict):
                raise TrainlabError(f"{args.config}: search must be a table ([search]) of KEY = SPEC")
            return table
    return None


def cmd_tune(args: argparse.Namespace, out: Output) -> int:
    from trainlab.tuning.search import ModelTrust, check_named_models, parse_search
    from trainlab.tuning.spec import StudySpec
    from trainlab.tuning.storage import check_study_folder
    from trainlab.tuning.study import TuneOptions, default_study_dir, require_optuna, run_study

    if args.trials < 1:
        raise TrainlabError(f"--trials must be >= 1, got {args.trials}")
    if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout > 0):
        raise TrainlabError(f"--timeout must be a number of seconds above 0, got {args.timeout:g}")
    search = search_from(args)
    trust = ModelTrust.of_command_line(args.model, args.search, args.trust_model_code)
    spec = None
    if search is not None:
        base = train_config(args, ignore=("search",))
        source = "--search" if args.search else f"{args.config} [search]"
        spec = StudySpec(base, parse_search(search, base, source), args.metric, args.pruner)
        if not args.search:  # a [search] table is a file's words, not the user's
            check_named_models(base, spec.search, f"config file {args.config} [search]", trust)
        spec.check()
    elif args.run_dir is None:
        raise TrainlabError(
            "trainlab tune needs --search KEY=SPEC (or a [search] table in --config), or the "
            "--run-dir of a study to continue"
        )
    require_optuna()
    study_dir = args.run_dir or default_study_dir()
    check_study_folder(study_dir)
    options = TuneOptions(
        trials=args.trials,
        timeout=args.timeout,
        storage=args.storage,
        study_name=args.study_name,
        download=not args.no_download,
        model_trust=trust,
    )
    result = run_study(spec, study_dir, options, say=out.say)
    out.result(result)
    return EXIT_OK
