"""The run's report pictures on the model card (/v1/model/reports/KEY.png): only regular files that are inside
the run directory once links are resolved, so that a link in a run directory never serves another file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from trainlab.layout import CONFUSION_FILE, CURVES_FILE
from trainlab.serve.errors import ApiError

REPORTS = {"learning_curves": CURVES_FILE, "confusion_matrix": CONFUSION_FILE}  # the run's pictures on the card
MAX_REPORT_BYTES = 64 * 1024 * 1024  # the reports trainlab draws are about 100 KB


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
    try:
        # O_NOFOLLOW: the checked path is link-free; O_NONBLOCK: a FIFO put there since cannot hang the server
        descriptor = os.open(reports[key], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        raise ApiError(404, f"no report {key!r}: its file changed while it was being read") from None
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise ApiError(404, f"no report {key!r}: its file is no longer a regular file")
        data = handle.read(MAX_REPORT_BYTES + 1)
    if len(data) > MAX_REPORT_BYTES:
        raise ApiError(404, f"no report {key!r}: its file is over {MAX_REPORT_BYTES // 2**20} MB, not a report")
    return data
