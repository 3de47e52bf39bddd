"""`trainlab.fit` as a notebook or script user meets it: progress shown in a Jupyter kernel, and an interrupt that
ends the run as Ctrl-C ends `trainlab train`, without a traceback.

An interrupt (the kernel's stop button, Ctrl-C, SIGTERM, a KeyboardInterrupt raised by a reporter) lets the step
finish and writes the resumable checkpoint; then fit says in one line how to resume and returns the summary with
status "interrupted", as Lightning's Trainer.fit catches KeyboardInterrupt and returns. A second interrupt stops at
once (no new checkpoint): a short KeyboardInterrupt naming the resume. The command line, --fast-dev-run and tune
ask for the TrainingInterrupted itself (on_interrupt="raise"): their exit status says how the run ended.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from trainlab.engine.reporting import Reporter
from trainlab.errors import TrainingInterrupted, TrainlabError
from trainlab.reports.console import ConsoleReporter
from trainlab.reports.notebook import NotebookReporter, in_jupyter_kernel

ON_INTERRUPT = ("return", "raise")


def progress_reporter(progress: bool | None, reporter: Reporter | None) -> Reporter | None:
    """The reporter that shows a run's progress, or None: in a Jupyter kernel the notebook's (by default only when
    the caller brought no reporter of their own), elsewhere the console's when progress=True; a script stays silent."""
    if progress is None:
        return NotebookReporter() if reporter is None and in_jupyter_kernel() else None
    if not progress:
        return None
    return NotebookReporter() if in_jupyter_kernel() else ConsoleReporter()


def check_on_interrupt(on_interrupt: str) -> None:
    """on_interrupt is one of ON_INTERRUPT."""
    if on_interrupt not in ON_INTERRUPT:
        raise TrainlabError(f"on_interrupt={on_interrupt!r}: use 'return' (the default) or 'raise'")


def resume_advice(run_dir: str) -> str:
    """How to go on with a stopped run, in Python and on the command line."""
    return f"fit(..., run_dir={run_dir!r}, resume=True) with the same arguments, or: trainlab train --resume {run_dir}"


def returned_on_interrupt(train: Callable[[], dict[str, Any]], run_dir: str | os.PathLike | None) -> dict[str, Any]:
    """train(); an interrupt returns the summary so far after one line saying how to resume."""
    try:
        return train()
    except TrainingInterrupted as stopped:
        summary = stopped.summary or {"status": "interrupted", "run_dir": stopped.run_dir}
        steps = f" at step {summary['steps']}" if "steps" in summary else ""
        print(
            f"Interrupted ({stopped.signal_name}): checkpoint saved{steps}; resume with "
            + resume_advice(str(summary["run_dir"])),
            file=sys.stderr,
            flush=True,
        )
        return summary
    except KeyboardInterrupt:
        where = str(run_dir) if run_dir is not None else "the run directory fit printed"
        raise KeyboardInterrupt(
            f"stopped at once: {where} keeps its last checkpoint, if it wrote one; resume with " + resume_advice(where)
        ) from None
