"""`train --resume RUN` with flags that would change the run, and `train --run-dir RUN` on an existing run:
one line naming the run and the commands that do work (continue it as it was, or a new run with the flags)."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from trainlab.cli.options import DATA_KEYS, RUNTIME_KEYS, flag_of, given
from trainlab.config import read_config_file
from trainlab.errors import TrainlabError
from trainlab.layout import CONFIG_FILE
from trainlab.resume_advice import SHAPING_KEYS, free_run_dir, new_run_command, quoted, resume_command

KEPT_KEYS = (*DATA_KEYS, *RUNTIME_KEYS, "tracking_uri")  # where the data is, how to run: --resume takes these
RECIPE_SOURCES = ("config", "preset", "init_from")  # a whole recipe, or weights, that a resume cannot take


def flag_text(key: str, value: Any) -> str:
    """A config value as the flags that set it: --lr 0.1, --shuffle / --no-shuffle, --freeze A --freeze B."""
    if isinstance(value, bool):
        return flag_of(key) if value else "--no-" + flag_of(key)[2:]
    if isinstance(value, list | tuple):
        return " ".join(f"{flag_of(key)} {shlex.quote(str(item))}" for item in value)
    return f"{flag_of(key)} {shlex.quote(str(value))}"


def flags_text(values: dict[str, Any]) -> str:
    return " ".join(flag_text(key, value) for key, value in values.items())


def kept_flags(args: argparse.Namespace) -> str:
    """The user's data, device and tracking-store flags: both advised commands keep them."""
    nproc = f"--nproc {args.nproc}" if (args.nproc or 1) > 1 else ""  # a run resumes with its processes
    download = "--no-download" * bool(args.no_download)
    return " ".join(filter(None, (flags_text(given(args, KEPT_KEYS)), download, nproc)))


def recipe_flags(args: argparse.Namespace, recipe_keys: tuple[str, ...], run_dir: Path) -> dict[str, Any]:
    """The flags given that change what the run computes: a value its config.toml already holds changes nothing
    (the run's own command, typed again), and a tracking store is where it logs, not what."""
    try:
        recorded = read_config_file(run_dir / CONFIG_FILE)  # plain TOML: nothing it names is imported
    except TrainlabError:
        recorded = {}  # said by the resume itself, or the run directory's checks
    return {
        key: value
        for key, value in given(args, recipe_keys).items()
        if key not in KEPT_KEYS and (key not in recorded or recorded[key] != value)
    }


def new_run(args: argparse.Namespace, run_dir: Path, changed: dict[str, Any], new_dir: Path | None) -> str:
    """A new run with the user's flags: from the run's config.toml and weights, or from the user's own
    --config/--preset (on the run's data when no data flag or file says other)."""
    flags = " ".join(filter(None, (flags_text(changed), kept_flags(args))))
    new_dir = new_dir or free_run_dir(run_dir)
    if not (args.config or args.preset):
        shaping = any(key in SHAPING_KEYS for key in changed)
        return new_run_command(run_dir, flags, shaping, new_dir, init_from=args.init_from)
    parts = ["trainlab train"]
    parts += [f"--preset {shlex.quote(args.preset)}"] * bool(args.preset)
    parts += [f"--config {quoted(args.config)}"] * bool(args.config)
    parts += [f"--init-from {quoted(args.init_from)}"] * bool(args.init_from)
    if not args.config and not given(args, DATA_KEYS) and (run_dir / CONFIG_FILE).is_file():
        recorded = read_config_file(run_dir / CONFIG_FILE)  # only its data source is taken: nothing is imported
        parts.append(flags_text({key: recorded[key] for key in DATA_KEYS if recorded.get(key) not in (None, False)}))
    return " ".join(filter(None, (*parts, flags, "--run-dir", quoted(new_dir))))


def what_changes(args: argparse.Namespace, changed: dict[str, Any]) -> str:
    """The flags a resume cannot take, as the user gave them: "--lr 0.1", "--config other.toml"."""
    sources = [flag_text(key, getattr(args, key)) for key in RECIPE_SOURCES if getattr(args, key)]
    return " ".join([*sources, flags_text(changed)]).strip()


def resume_refusal(args: argparse.Namespace, recipe_keys: tuple[str, ...]) -> str | None:
    """--resume RUN with flags that would change the run: why not, and the commands that work (None: none)."""
    run_dir = Path(args.resume)
    changed = recipe_flags(args, recipe_keys, run_dir)
    what = what_changes(args, changed)
    if not what and not args.run_dir and not args.overwrite:
        return None
    resume = resume_command(run_dir, kept_flags(args))
    dropped = ", ".join(filter(None, (what, "--run-dir" * bool(args.run_dir), "--overwrite" * args.overwrite)))
    head = (
        f"--resume continues {run_dir} exactly as it was configured, so it takes no {dropped}; to continue it: {resume}"
    )
    if not what:  # --overwrite or --run-dir alone: starting the run again is the other command that works
        new_dir = Path(args.run_dir or run_dir)
        again = new_run_command(run_dir, kept_flags(args), shaping=True, new_dir=new_dir)
        return f"{head}; to start it again from the beginning: {again}{' --overwrite' * new_dir.exists()}"
    new_dir = Path(args.run_dir) if args.run_dir and not Path(args.run_dir).exists() else None
    return f"{head}; for a new run with {what}: {new_run(args, run_dir, changed, new_dir)}"


def refuse_an_existing_run(args: argparse.Namespace, recipe_keys: tuple[str, ...]) -> None:
    """--run-dir RUN that holds a run (without --overwrite): one line with the commands that work for it."""
    run_dir = Path(args.run_dir)
    from trainlab.training.rundir import refuse_existing  # torch's import: not for --help or a refused flag

    refuse_existing(run_dir, resume=True, overwrite=False)  # a file, a broken link or links inside: said there
    if args.overwrite or not (run_dir / CONFIG_FILE).is_file():
        return  # an empty folder, or --overwrite: the run directory's own checks decide
    changed = recipe_flags(args, recipe_keys, run_dir)
    what = what_changes(args, changed)
    resume = resume_command(run_dir, kept_flags(args))
    if not what:
        raise TrainlabError(
            f"run directory {run_dir} already exists; to continue it: {resume}; to replace it, add --overwrite; "
            "or choose another --run-dir"
        )
    raise TrainlabError(
        f"run directory {run_dir} already exists, and --resume would continue it as it was configured, without "
        f"{what}; for a new run with {what}: {new_run(args, run_dir, changed, None)}; to continue it as it was: "
        f"{resume}; to replace it, add --overwrite"
    )
