"""Trials that a process of this machine left running when it died: failed, and queued to run again (each
resuming its run directory); and which trials count toward --trials, whichever processes ran them."""

from __future__ import annotations

import os
import socket
from typing import Any


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_dead_trials(study: Any) -> list[str]:
    """Trials left running by a process of this machine that is gone: failed, and queued to run again
    (each resuming its run directory). Trials of live processes and other machines are left alone."""
    import optuna

    notes = []
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        attrs = trial.user_attrs
        if attrs.get("host") != host or "pid" not in attrs or process_alive(int(attrs["pid"])):
            continue
        try:
            study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:  # another process starting now recovered it first
            continue
        study.enqueue_trial(trial.params, user_attrs={"resumes": attrs.get("run_dir", "")})
        notes.append(f"trial {trial.number} was left running by a process that is gone; it runs again, resumed")
    return notes


def finished_trials(study: Any) -> int:
    """Trials that count toward --trials: complete, pruned, and failed on their own error (a trial that a dead
    process left running is failed too, but runs again and counts then)."""
    from optuna.trial import TrialState

    return sum(
        trial.state in (TrialState.COMPLETE, TrialState.PRUNED)
        or (trial.state == TrialState.FAIL and "error" in trial.user_attrs)
        for trial in study.get_trials(deepcopy=False)
    )


class StopAfter:
    """Stops the study once it has `trials` finished trials in all, whichever processes ran them."""

    def __init__(self, trials: int):
        self.trials = trials

    def __call__(self, study: Any, trial: Any) -> None:
        if finished_trials(study) >= self.trials:
            study.stop()
