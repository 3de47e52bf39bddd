"""The run's report pictures on the model card (/v1/model/reports/KEY.png) and its review (RUN/review/review.csv,
/v1/model/review): only regular files that are inside the run directory once links are resolved, so that a link
in a run directory never serves another file."""

from __future__ import annotations

import csv
import io
import os
import stat
from pathlib import Path
from typing import Any

from trainlab.layout import CONFUSION_FILE, CURVES_FILE, REVIEW_COLUMNS, REVIEW_CSV, REVIEW_PNG
from trainlab.serve.errors import ApiError

# the run's pictures on the card; review.png is drawn by `trainlab review RUN`
REPORTS = {"learning_curves": CURVES_FILE, "confusion_matrix": CONFUSION_FILE, "review": str(REVIEW_PNG)}
MAX_REPORT_BYTES = 64 * 1024 * 1024  # the reports trainlab draws are about 100 KB
MAX_REVIEW_ROWS = 50  # suspects shown on the page; the CSV holds them all


def report_problem(run_dir: Path, path: Path) -> str | None:
    """Why a report file is not served (None: it is): a link out of the run directory or to no file, or not a
    regular file."""
    try:
        resolved = path.resolve(strict=True)
        root = run_dir.resolve(strict=True)
        mode = resolved.stat().st_mode
    except (OSError, RuntimeError) as exc:  # RuntimeError: a link loop, before Python 3.13
        return f"cannot be read ({getattr(exc, 'strerror', None) or exc})"
    if not resolved.is_relative_to(root):
        return f"it is a link to {resolved}, outside the run directory"
    if not stat.S_ISREG(mode):
        return "it is not a regular file"
    return None


def find_reports(run_dir: Path | None) -> tuple[dict[str, Path], dict[str, str]]:
    """The run's report pictures that are served ({key: path}) and those skipped ({file name: why})."""
    served: dict[str, Path] = {}
    skipped: dict[str, str] = {}
    if run_dir is None:  # a file outside a run directory has no reports
        return served, skipped
    for key, name in REPORTS.items():
        path = run_dir / name
        if not os.path.lexists(path):  # not drawn (yet): nothing to say
            continue
        problem = report_problem(run_dir, path)
        if problem is None:
            served[key] = path.resolve()
        else:
            skipped[name] = problem
    return served, skipped


def report_png(run_dir: Path | None, key: str) -> bytes:
    """A served report's bytes, read without following a link swapped in since it was checked; 404 otherwise."""
    reports, _ = find_reports(run_dir)
    if key not in reports:
        raise ApiError(404, f"no report {key!r}; this model has: {', '.join(reports) or 'none'}")
    return read_checked(reports[key], f"report {key!r}")


def read_checked(path: Path, what: str) -> bytes:
    """A checked file's bytes, opened without following links and only while it is a regular file; 404 otherwise."""
    try:
        # O_NOFOLLOW: the checked path is link-free; O_NONBLOCK: a FIFO put there since cannot hang the server
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        raise ApiError(404, f"no {what}: its file changed while it was being read") from None
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise ApiError(404, f"no {what}: its file is no longer a regular file")
        data = handle.read(MAX_REPORT_BYTES + 1)
    if len(data) > MAX_REPORT_BYTES:
        raise ApiError(404, f"no {what}: its file is over {MAX_REPORT_BYTES // 2**20} MB, not a report")
    return data


def review_rows(run_dir: Path | None) -> dict[str, Any]:
    """The first suspects of the run's review.csv ({"suspects": [...], "total": n}); 404 when it has none that is
    a regular file inside the run directory."""
    path = run_dir / REVIEW_CSV if run_dir is not None else None
    if path is None or not os.path.lexists(path):
        raise ApiError(404, "this model has no review; run `trainlab review RUN` to make one")
    problem = report_problem(run_dir, path)  # type: ignore[arg-type]
    if problem is not None:
        raise ApiError(404, f"the review {REVIEW_CSV} is not served: {problem}")
    text = read_checked(path.resolve(), "review").decode("utf-8", errors="replace")
    rows = list(csv.DictReader(io.StringIO(text)))
    shown = [{column: row.get(column) or "" for column in REVIEW_COLUMNS} for row in rows[:MAX_REVIEW_ROWS]]
    return {"suspects": shown, "total": len(rows)}
