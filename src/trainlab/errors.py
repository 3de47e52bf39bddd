"""The one exception type users see: a message that names the problem and what to do."""


class TrainlabError(Exception):
    """Bad input or an unusable file; the CLI prints the message on one line and exits with status 2."""


class ConfigError(TrainlabError):
    """An invalid configuration value, from a flag or a config file."""


class DataError(TrainlabError):
    """A data file that is missing, corrupt or inconsistent."""


class CheckpointError(TrainlabError):
    """A checkpoint that cannot be read or does not fit the model."""


class FileWriteError(TrainlabError):
    """A file could not be written (full disk, read-only folder); the previous version of it is intact."""

    def __init__(self, path: object, reason: str):
        super().__init__(f"cannot write {path}: {reason}")
        self.path = path
        self.reason = reason


class TrainingInterrupted(Exception):
    """Training stopped on SIGINT/SIGTERM after writing a resumable checkpoint."""

    def __init__(self, run_dir: str, signal_name: str):
        super().__init__(f"{signal_name} received: checkpoint saved; resume with: trainlab train --resume {run_dir}")
        self.run_dir = run_dir
        self.signal_name = signal_name
        self.summary: dict | None = None  # the run summary so far (status "interrupted"), once fit has it


class TrainingDiverged(TrainlabError):
    """The loss became NaN or infinite."""


class RunEndedEarly(TrainlabError):
    """Raised by a reporter at an epoch's end to end the run there (a pruned tuning trial): every file of the
    run is complete to that epoch, and its summary says `status`."""

    status = "ended early"
    tracking_status = "ended early"
