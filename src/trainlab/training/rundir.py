"""Run directories: naming, refusing to clobber, a lock against two writers, and their one writer."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trainlab.errors import FileWriteError, TrainlabError
from trainlab.fileio import read_json_object, temporary_target, write_bytes_atomically
from trainlab.layout import (  # noqa: F401 - re-exported: the run directory's names
    BEST_CHECKPOINT,
    CHECKPOINT_FOLDER,
    CONFIG_FILE,
    CONFUSION_FILE,
    CURVES_FILE,
    LAST_CHECKPOINT,
    LOCK_FILE,
    METRICS_FILE,
    RECIPE_FILE,
    RUN_FILES,
    SUMMARY_FILE,
    TENSORBOARD_FOLDER,
    TOP_LOSSES_FILE,
    TRACKING_FILE,
)
from trainlab.reports import run_reports


def default_run_dir(root: str | os.PathLike = "runs") -> Path:
    """runs/<time stamp>, with a suffix if that name is taken."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate = Path(root) / stamp
    suffix = 1
    while candidate.exists():
        suffix += 1
        candidate = Path(root) / f"{stamp}-{suffix}"
    return candidate


def prepare_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Create the run directory; refuse an existing one unless resuming or overwriting."""
    refuse_existing(run_dir, resume, overwrite)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrainlabError(f"cannot create run directory {run_dir}: {exc.strerror or exc}") from None
    if not os.access(run_dir, os.W_OK):
        raise TrainlabError(f"run directory {run_dir} is not writable; choose another --run-dir")


def refuse_existing(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse a run directory that holds a run, unless resuming or overwriting (checked again under the lock).

    --overwrite replaces only a trainlab run (its config and nothing but a run's files) or an empty folder, and
    no run directory is used whose own files are symbolic links (trainlab never writes through a link).
    """
    if run_dir.is_symlink() and not run_dir.is_dir():
        raise TrainlabError(f"run directory {run_dir} is a broken symbolic link; choose another --run-dir")
    if run_dir.exists() and not run_dir.is_dir():
        raise TrainlabError(f"run directory {run_dir} exists and is a file; choose another --run-dir")
    if not run_dir.is_dir():
        return
    links = linked_entries(run_dir)
    if links:
        raise TrainlabError(
            f"run directory {run_dir} holds symbolic links ({', '.join(links)}); trainlab never "
            "writes through links: remove them or choose another --run-dir"
        )
    if resume or all(_is_scratch("", entry.name) for entry in run_dir.iterdir()):
        return
    if not overwrite and not (run_dir / CONFIG_FILE).is_file():  # --resume would refuse it: not a run
        raise TrainlabError(
            f"run directory {run_dir} already exists and holds no trainlab run (no {CONFIG_FILE}); nothing was "
            "touched: choose another --run-dir"
        )
    if not overwrite:
        raise TrainlabError(
            f"run directory {run_dir} already exists; pass --resume {run_dir} to continue it, "
            "--overwrite to replace it, or choose another --run-dir"
        )
    foreign = foreign_entries(run_dir)
    if foreign or not (run_dir / CONFIG_FILE).is_file():
        what = (
            f"it holds {', '.join(foreign[:5])}{' and more' if len(foreign) > 5 else ''}, which no run writes"
            if foreign
            else f"it has no {CONFIG_FILE}"
        )
        raise TrainlabError(
            f"--overwrite replaces only a trainlab run directory or an empty folder, and {run_dir} "
            f"is not one ({what}); nothing was touched: choose another --run-dir"
        )


def _own_entries(run_dir: Path) -> list[Path]:
    """The entries of run_dir and of its checkpoints/ and tensorboard/ folders."""
    entries = list(run_dir.iterdir())
    for folder in (CHECKPOINT_FOLDER, TENSORBOARD_FOLDER):
        path = run_dir / folder
        if path.is_dir() and not path.is_symlink():
            entries += list(path.iterdir())
    return entries


# The names a run writes, folder by folder: a file of any other name is a user's, wherever it sits.
OWN_FILE_NAMES = {
    "": frozenset(RUN_FILES),
    CHECKPOINT_FOLDER: frozenset({LAST_CHECKPOINT.name, BEST_CHECKPOINT.name}),
}
TENSORBOARD_EVENTS_PREFIX = "events.out.tfevents."  # SummaryWriter's event files


def _belongs_to_a_run(run_dir: Path, entry: Path) -> bool:
    """Whether a run writes this entry, by its name: its files, last.pt and best.pt, event files, temporaries."""
    relative = entry.relative_to(run_dir)
    folder = "" if len(relative.parts) == 1 else relative.parts[0]
    if folder == "" and entry.name in (CHECKPOINT_FOLDER, TENSORBOARD_FOLDER):
        return entry.is_dir()
    if not entry.is_file():  # a run writes only regular files: a folder, FIFO or socket is a user's
        return False
    if folder == TENSORBOARD_FOLDER:
        return entry.name.startswith(TENSORBOARD_EVENTS_PREFIX)
    return _is_scratch(folder, entry.name) or entry.name in OWN_FILE_NAMES[folder]


def foreign_entries(run_dir: Path) -> list[str]:
    """Paths in run_dir (relative) that no trainlab run writes: a user's files, which are never deleted."""
    return sorted(
        str(entry.relative_to(run_dir))
        for entry in _own_entries(run_dir)
        if entry.is_symlink() or not _belongs_to_a_run(run_dir, entry)
    )


def linked_entries(run_dir: Path) -> list[str]:
    """The run's own files and folders that are symbolic links (a copied run directory may hold them)."""
    return sorted(
        str(entry.relative_to(run_dir))
        for entry in _own_entries(run_dir)
        if entry.is_symlink() and _belongs_to_a_run(run_dir, entry)
    )


def _is_scratch(folder: str, name: str) -> bool:
    """The lock file, and a temporary file of an interrupted atomic write of a run's own file (in `folder`)."""
    if folder == "" and name == LOCK_FILE:
        return True
    return temporary_target(name) in OWN_FILE_NAMES.get(folder, ())


def remove_temporary_files(run_dir: Path) -> None:
    """Delete the temporary files of a writer killed mid-write (call with the lock held); a user's stay."""
    for folder in ("", CHECKPOINT_FOLDER):
        if (run_dir / folder).is_dir():
            for entry in (run_dir / folder).iterdir():
                if entry.name != LOCK_FILE and _is_scratch(folder, entry.name) and entry.is_file():
                    entry.unlink(missing_ok=True)


def first_missing_ancestor(run_dir: Path) -> Path | None:
    """The outermost folder of run_dir's path that does not exist yet (None if run_dir exists)."""
    missing = None
    for path in (run_dir, *run_dir.parents):
        if path.exists():
            break
        missing = path
    return missing


class RunStart:
    """Whether this process started the run's files (wrote its config.toml), for removed_if_unused."""

    def __init__(self) -> None:
        self.wrote_config = False


@contextlib.contextmanager
def removed_if_unused(run_dir: Path, created: Path | None) -> Iterator[RunStart]:
    """A run that fails before its first checkpoint (bad data, model or device) leaves no trace behind.

    What it wrote (config, metrics, event files) is removed when it had started the run itself and no
    checkpoint exists; `created` is the outermost folder this run created (see first_missing_ancestor): it
    and the empty folders below it on the way to run_dir are removed too, so no empty runs/ is left behind.
    """
    start = RunStart()
    try:
        yield start
    except BaseException:
        with contextlib.suppress(OSError):
            if start.wrote_config and not (run_dir / LAST_CHECKPOINT).is_file() and not foreign_entries(run_dir):
                clear_run_dir(run_dir)
            if run_dir.is_dir() and {entry.name for entry in run_dir.iterdir()} <= {LOCK_FILE}:
                (run_dir / LOCK_FILE).unlink(missing_ok=True)
                if created is not None:
                    path = run_dir
                    while True:
                        path.rmdir()
                        if path == created:
                            break
                        path = path.parent
        raise


def clear_run_dir(run_dir: Path) -> None:
    """Remove a previous run's files (for --overwrite), keeping the lock file we hold; nothing else is touched."""
    foreign = foreign_entries(run_dir)
    if foreign:  # refuse_existing checked this under the lock; a file that appeared since is kept all the same
        raise TrainlabError(
            f"{run_dir} now holds {', '.join(foreign[:5])}, which no run writes; nothing was "
            "touched: choose another --run-dir"
        )
    for entry in run_dir.iterdir():
        if entry.name == LOCK_FILE:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


class RunLock:
    """An exclusive lock on a run directory so two processes never train into it at once."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / LOCK_FILE
        self._handle = None

    def __enter__(self) -> RunLock:
        try:  # O_NOFOLLOW: a lock file that is a link is refused, never written through
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
        except OSError as exc:
            raise TrainlabError(
                f"cannot lock {self.path}: {exc.strerror or exc} (is it a symbolic link? remove it)"
            ) from None
        handle = os.fdopen(fd, "r+")  # noqa: SIM115 - held for the whole run
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise TrainlabError(
                f"another trainlab process is training into {self.path.parent}; wait for it or choose another --run-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


class RunDirectory:
    """The one writer of a run directory: config, checkpoints, metrics, summary, reports and event files.

    Every write into a run goes through here, behind one gate: with primary=False (another process of a
    distributed run) nothing is written and the paths are only read.
    """

    def __init__(self, path: str | os.PathLike, primary: bool = True):
        self.path = Path(path)
        self.primary = primary

    def __truediv__(self, name: str | os.PathLike) -> Path:
        return self.path / name

    def __str__(self) -> str:
        return str(self.path)

    @contextlib.contextmanager
    def opened(self, resume: bool, overwrite: bool) -> Iterator[RunStart]:
        """Create (or reopen) the run directory and hold its lock while the run writes into it.

        A run that fails before its first checkpoint leaves nothing behind (see removed_if_unused).
        """
        if not self.primary:
            yield RunStart()
            return
        created = first_missing_ancestor(self.path)
        prepare_run_dir(self.path, resume=resume, overwrite=overwrite)
        with RunLock(self.path), removed_if_unused(self.path, created) as start:  # only what we locked
            refuse_existing(self.path, resume, overwrite)  # again: another process may have finished a run here
            remove_temporary_files(self.path)
            yield start

    def clear(self) -> None:
        """Remove a previous run's files (--overwrite), once the new run is known to start."""
        if self.primary:
            clear_run_dir(self.path)

    @property
    def last_checkpoint(self) -> Path:
        return self.path / LAST_CHECKPOINT

    @property
    def best_checkpoint(self) -> Path:
        return self.path / BEST_CHECKPOINT

    @property
    def tensorboard_dir(self) -> Path | None:
        """Where the TensorBoard reporter writes its event files (None: not this process)."""
        return self.path / TENSORBOARD_FOLDER if self.primary else None

    def write_config(self, config: Any) -> None:
        if self.primary:
            write_file(self.path / CONFIG_FILE, config.to_toml().encode())

    def write_metrics(self, metrics: list[dict[str, Any]]) -> None:
        """metrics.jsonl holds one JSON object per finished epoch, rewritten atomically."""
        if self.primary:
            write_file(self.path / METRICS_FILE, "".join(json.dumps(row) + "\n" for row in metrics).encode())

    def write_summary(self, summary: dict[str, Any]) -> None:
        if self.primary:
            write_file(self.path / SUMMARY_FILE, (json.dumps(summary, indent=2) + "\n").encode())

    def write_tracking(self, record: dict[str, Any]) -> None:
        """tracking.json: which tracking server and run this run logs to."""
        if self.primary:
            write_file(self.path / TRACKING_FILE, (json.dumps(record, indent=2) + "\n").encode())

    def write_recipe(self, record: dict[str, Any]) -> None:
        """recipe.json: what --preset auto chose from the data, and why."""
        if self.primary:
            write_file(self.path / RECIPE_FILE, (json.dumps(record, indent=2) + "\n").encode())

    def read_recipe(self) -> dict[str, Any] | None:
        """The recipe record of an auto run (None for a run given its recipe, or an unreadable record)."""
        return read_json_object(self.path / RECIPE_FILE)

    def read_tracking(self) -> dict[str, Any]:
        """The tracking record a previous start of this run wrote ({} when none or unreadable)."""
        return read_tracking(self.path)

    def save_checkpoint(self, payload: dict[str, Any], *names: str | os.PathLike) -> None:
        """Write checkpoints/last.pt (or each of `names`, in order) atomically from one payload."""
        from trainlab.checkpoint import save_checkpoint

        if self.primary:
            for name in names or (LAST_CHECKPOINT,):
                save_checkpoint(self.path / name, payload)

    def write_reports(self, analysis: dict[str, Any]) -> list[Path]:
        """The end-of-run PNG reports (learning curves, confusion matrix, top losses); returns their paths."""
        if not self.primary:
            return []
        try:
            return run_reports.write_run_reports({**analysis, "run_dir": self.path})
        except FileWriteError as exc:
            raise FileWriteError(
                exc.path, f"{exc.reason}; the run itself is complete and saved in {self.path}"
            ) from None


def read_tracking(folder: Path) -> dict[str, Any]:
    """The tracking record (tracking.json) a previous start in `folder`, a run's or a study's, wrote ({} when none
    or unreadable)."""
    return read_json_object(Path(folder) / TRACKING_FILE) or {}


def write_file(path: Path, content: bytes) -> None:
    """Write a run file atomically; a full disk or a read-only folder is a one-line error, the old file intact."""
    try:
        write_bytes_atomically(path, content)
    except FileWriteError as exc:
        raise FileWriteError(path, f"{exc.reason}; the previous version is intact") from None
