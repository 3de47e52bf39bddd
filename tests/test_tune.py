"""`trainlab tune`: search specs checked before any trial, a study of normal run directories, pruning, best.toml,
resume after a kill, several processes on one SQLite study, and a study folder that keeps its own settings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import assert_one_line_error, read_metrics

pytest.importorskip("optuna")

TINY = ("--device", "cpu", "--threads", "1", "--no-download")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
START_TIMEOUT = 120  # seconds until a study's first trial writes its first checkpoint
# `python -m trainlab` without the end-of-run PNG reports of each trial (about a second each on a busy CPU)
MAIN_WITHOUT_RUN_REPORTS = (
    "import sys\n"
    "import trainlab.reports.run_reports as run_reports\n"
    "run_reports.write_run_reports = lambda analysis: []\n"
    "from trainlab.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def tune_args(data_dir: Path, study: Path, *extra: str, epochs: int = 1) -> list:
    """`trainlab tune` on generated data: the mlp, 2 batches an epoch, a 20% validation split; then `extra`."""
    return [
        "tune", "--data-dir", data_dir, *TINY, "--val-split", "0.2", "--epochs", str(epochs),
        "--limit-train-batches", "2", "--run-dir", study, *extra,
    ]  # fmt: skip


def json_summary(result) -> dict:
    """The last stdout line of a --json command."""
    return json.loads(result.stdout.strip().splitlines()[-1])


def trials_of(study: Path):
    """The study's trials, read back with Optuna's own API."""
    import optuna

    storage = f"sqlite:///{study / 'study.db'}"
    return optuna.load_study(study_name=study.name, storage=storage).get_trials(deepcopy=False)


def tune_process(*args, log: Path) -> subprocess.Popen:
    """`trainlab tune ARGS` in a subprocess (one CPU thread, no per-trial reports), output to log.out/log.err."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log.with_suffix(".out"), "w") as stdout, open(log.with_suffix(".err"), "w") as stderr:
        return subprocess.Popen(
            [sys.executable, "-c", MAIN_WITHOUT_RUN_REPORTS, *map(str, args)],
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )


def finished(process: subprocess.Popen, log: Path, timeout: float = 300) -> tuple[str, str]:
    """Wait for a tune_process; asserts exit status 0; returns (stdout, stderr)."""
    process.wait(timeout=timeout)
    stdout, stderr = log.with_suffix(".out").read_text(), log.with_suffix(".err").read_text()
    assert process.returncode == 0, stderr
    return stdout, stderr


# bad input: one line, exit 2, before any trial runs --------------------------------------------------------------

ALL_TUNABLE = (
    "tunable keys: augment, augment_erasing, augment_flip, augment_padding, batch_size, channels_last, compile, "
    "dropout, early_stop, epochs"
)


@pytest.mark.parametrize(
    ("search", "message"),
    [
        (["foo=1:2"], f"--search foo=1:2: 'foo' is not a key a trial can vary; {ALL_TUNABLE}"),
        (["device=cpu,cuda"], "--search device=cpu,cuda: 'device' is not a key a trial can vary; tunable keys: "),
        (["data_dir=a,b"], "--search data_dir=a,b: 'data_dir' is not a key a trial can vary; tunable keys: "),
        (["val_split=0.1,0.2"], "--search val_split=0.1,0.2: 'val_split' is not a key a trial can vary"),
        (["threads=1,2"], "--search threads=1,2: 'threads' is not a key a trial can vary"),
        (["time_budget=60,120"], "--search time_budget=60,120: 'time_budget' is not a key a trial can vary"),
        (
            ["lr=1e-1:1e-4"],
            "--search lr=1e-1:1e-4: the range is empty; LOW must be below HIGH (got 0.1 and 0.0001)",
        ),
        (
            ["lr=0:1:log"],
            "--search lr=0:1:log: a log range needs LOW > 0 (got 0); use a linear range or a LOW such as 1e-6",
        ),
        (
            ["batch_size=0.5:2"],
            "--search batch_size=0.5:2: batch_size takes whole numbers; give whole-number bounds (e.g. 16:256)",
        ),
        (
            ["optimizer=1:2"],
            "--search optimizer=1:2: optimizer takes a name, not a range; list the choices as A,B",
        ),
        (
            ["optimizer=sgd,foo"],
            "--search optimizer=sgd,foo: unknown optimizer 'foo'; choose one of: sgd, rmsprop, adam, adamw",
        ),
        (["lr=1e-3:1e-1", "lr=1e-2:1e-1"], "--search lr=1e-2:1e-1: lr is searched twice; give each key once"),
        (["lr"], "--search 'lr': expected KEY=LOW:HIGH[:log] or KEY=A,B,C (e.g. lr=1e-4:1e-1:log)"),
        (["lr="], "--search 'lr=': expected KEY=LOW:HIGH[:log] or KEY=A,B,C"),
        (["lr=abc:1"], "--search lr=abc:1: 'abc' is not a number"),
        (["lr=1:2:3"], "--search lr=1:2:3: expected LOW:HIGH or LOW:HIGH:log (e.g. 1e-4:1e-1:log)"),
        (["batch_size=64,64"], "--search batch_size=64,64: a choice is listed twice"),
        (["batch_size=64,"], "--search batch_size=64,: an empty choice; write A,B,C"),
        (["nesterov=true,maybe"], "--search nesterov=true,maybe: choices for this key are true and false, got 'maybe'"),
        (["lr=0:1"], "--search lr=0:1: "),  # lr 0 is no config: the config's own message follows
        (
            ["model=mlp,foo"],
            "--search model=mlp,foo: unknown model 'foo'; choose from: cnn, mlp, resnet, tv:NAME (torchvision), or "
            "your own as package.module:Class",
        ),
    ],
)
def test_a_bad_search_spec_is_one_line_and_exit_2_before_any_trial(tiny_data, tmp_path, run_main, search, message):
    study = tmp_path / "study"
    result = run_main(*tune_args(tiny_data, study, "--search", *search))
    line = assert_one_line_error(result, message)
    assert line.startswith("trainlab tune: error: ")
    assert not study.exists()
    assert result.stdout == ""  # not even the study's first line


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ("--search", "lr=1e-3:1e-1"),  # no --val-split
            "trainlab tune chooses by val_accuracy on a validation split, never the test set; add --val-split 0.1 "
            "(or val_split in the config)",
        ),
        (("--val-split", "0.2", "--search", "lr=1e-3:1e-1", "--trials", "0"), "--trials must be >= 1, got 0"),
        (
            ("--val-split", "0.2", "--search", "lr=1e-3:1e-1", "--timeout", "0"),
            "--timeout must be a number of seconds above 0, got 0",
        ),
        (
            ("--val-split", "0.2", "--search", "lr=1e-3:1e-1", "--metric", "test_accuracy"),
            "unknown --metric 'test_accuracy'; choose one of: val_accuracy, val_loss",
        ),
        (
            ("--val-split", "0.2", "--search", "lr=1e-3:1e-1", "--pruner", "sometimes"),
            "unknown --pruner 'sometimes'; choose one of: median, hyperband, none",
        ),
    ],
)
def test_a_study_that_cannot_be_scored_or_run_is_refused_before_any_trial(
    tiny_data, tmp_path, run_main, flags, message
):
    study = tmp_path / "study"
    result = run_main("tune", "--data-dir", tiny_data, *TINY, "--epochs", "1", "--run-dir", study, *flags)
    assert_one_line_error(result, message)
    assert not study.exists()


def test_tune_without_a_search_needs_the_folder_of_a_study_to_continue(tiny_data, tmp_path, run_main):
    result = run_main("tune", "--data-dir", tiny_data, *TINY, "--val-split", "0.2")
    assert_one_line_error(
        result,
        "trainlab tune needs --search KEY=SPEC (or a [search] table in --config), or the --run-dir of a study to "
        "continue",
    )
    assert not (tmp_path / "runs").exists()
    result = run_main("tune", "--run-dir", tmp_path / "nothing-here")
    assert_one_line_error(
        result, f"{tmp_path / 'nothing-here'} holds no study (study.toml missing); give --search to start one there"
    )
    assert not (tmp_path / "nothing-here").exists()


def test_missing_data_is_refused_before_the_study_folder_exists_so_the_fixed_command_runs(
    tiny_data, tmp_path, run_main, no_run_reports
):
    study = tmp_path / "study"
    args = tune_args(tmp_path / "no-data", study, "--search", "lr=1e-3:1e-1:log", "--trials", "1")
    result = run_main(*args)
    assert_one_line_error(result, "train-images-idx3-ubyte (or .gz) not found")
    assert not study.exists()  # else the corrected command would meet a study "with other settings"
    fixed = [tiny_data if arg == tmp_path / "no-data" else arg for arg in args]
    result = run_main(*fixed)
    assert result.returncode == 0, result.stderr
    assert [trial.state.name for trial in trials_of(study)] == ["COMPLETE"]


# a study end to end -----------------------------------------------------------------------------------------------


def test_a_study_runs_its_trials_as_run_directories_and_writes_best_toml_and_plots(
    tiny_data, tmp_path, run_main, no_run_reports
):
    study = tmp_path / "study"
    result = run_main(
        *tune_args(tiny_data, study, "--search", "lr=1e-3:1e-1:log", "optimizer=sgd,adam", "--trials", "3", "--json"),
        "--pruner", "none",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json_summary(result)
    assert summary["study"] == "study"
    assert summary["study_dir"] == str(study)
    assert summary["metric"] == "val_accuracy"
    assert summary["pruned"] == 0
    trials = summary["trials"]
    assert [trial["number"] for trial in trials] == [0, 1, 2]
    assert [trial["state"] for trial in trials] == ["complete"] * 3
    assert [trial["run_dir"] for trial in trials] == [str(study / f"trial-{n:04d}") for n in range(3)]
    assert all(trial["epochs"] == 1 and trial["error"] is None for trial in trials)
    for trial in trials:
        assert sorted(trial["params"]) == ["lr", "optimizer"]
        assert 1e-3 <= trial["params"]["lr"] <= 1e-1
        assert trial["params"]["optimizer"] in ("sgd", "adam")
        run_dir = Path(trial["run_dir"])
        for name in ("config.toml", "metrics.jsonl", "summary.json", "checkpoints/last.pt"):
            assert (run_dir / name).is_file(), name
        rows = read_metrics(run_dir)
        assert [row["epoch"] for row in rows] == [1]
        assert trial["value"] == rows[0]["val_accuracy"]  # the validation split, never the test set
        assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"
    best = summary["best"]
    assert best["value"] == max(trial["value"] for trial in trials)
    assert best["number"] == next(t["number"] for t in trials if t["value"] == best["value"])
    assert best["run_dir"] == str(study / f"trial-{best['number']:04d}")
    assert best["params"] == trials[best["number"]]["params"]
    # the human lines go to stderr with --json: the table and where best.toml is
    assert f"Study study in {study}: 0 of 3 trials finished" in result.stderr
    assert f"Best: trial {best['number']}, val_accuracy {best['value']:.4f}" in result.stderr
    assert f"Train it again with: trainlab train --config {study / 'best.toml'}" in result.stderr
    table = result.stderr[result.stderr.index("#  ") :].splitlines()
    assert table[0].split() == ["#", "state", "lr", "optimizer", "val_accuracy", "epochs", "seconds"]
    assert table[1 + best["number"]].startswith(f"{best['number']}*")

    assert summary["best_config"] == str(study / "best.toml")
    assert (study / "best.toml").read_bytes() == (Path(best["run_dir"]) / "config.toml").read_bytes()
    assert summary["plots"] == [str(study / "optimization_history.png"), str(study / "param_importances.png")]
    for plot in summary["plots"]:
        assert Path(plot).read_bytes()[:8] == PNG_SIGNATURE
    recorded = (study / "study.toml").read_text()
    assert 'search = [\n    "lr=0.001:0.1:log",\n    "optimizer=sgd,adam",\n]' in recorded
    assert 'metric = "val_accuracy"' in recorded and 'pruner = "none"' in recorded

    listed = run_main("runs", study, "--json")
    assert listed.returncode == 0, listed.stderr
    runs = json_summary(listed)["runs"]
    assert [row["run"] for row in runs] == [trial["run_dir"] for trial in trials]
    assert [row["lr"] for row in runs] == [trial["params"]["lr"] for trial in trials]
    assert [row["optimizer"] for row in runs] == [trial["params"]["optimizer"] for trial in trials]

    again = tmp_path / "again"
    trained = run_main("train", "--config", study / "best.toml", "--run-dir", again, "--no-download", "--quiet")
    assert trained.returncode == 0, trained.stderr
    import tomllib

    config = tomllib.loads((again / "config.toml").read_text())
    assert config["lr"] == best["params"]["lr"]
    assert config["optimizer"] == best["params"]["optimizer"]
    assert (again / "config.toml").read_bytes() == (study / "best.toml").read_bytes()  # the same run again
    assert read_metrics(again)[0]["val_accuracy"] == best["value"]  # CPU training is deterministic


def test_a_study_with_every_trial_failing_ends_after_trials_with_one_line_each(
    tiny_data, tmp_path, run_main, monkeypatch
):
    import trainlab.training
    from trainlab.errors import TrainingDiverged

    calls = []

    def diverging_fit(*args, **kwargs):
        calls.append(kwargs["run_dir"])
        raise TrainingDiverged("the loss became NaN")

    monkeypatch.setattr(trainlab.training, "fit", diverging_fit)
    study = tmp_path / "study"
    result = run_main(*tune_args(tiny_data, study, "--search", "lr=1e-3:1e-1", "--trials", "2", "--json"))
    assert result.returncode == 0, result.stderr
    assert calls == [study / "trial-0000", study / "trial-0001"]  # two trials, not a loop until --timeout
    summary = json_summary(result)
    assert [trial["state"] for trial in summary["trials"]] == ["fail", "fail"]
    assert [trial["error"] for trial in summary["trials"]] == ["the loss became NaN"] * 2
    assert summary["best"] is None and summary["best_config"] is None and summary["plots"] == []
    assert "  trial 0 failed: the loss became NaN\n" in result.stderr
    assert "  trial 1 failed: the loss became NaN\n" in result.stderr
    assert "No trial has finished yet; nothing is best" in result.stderr
    assert "Traceback" not in result.stderr  # Optuna's own warning repeats each failure with one
    assert not (study / "best.toml").exists()


# pruning ----------------------------------------------------------------------------------------------------------


class FakeTrial:
    """What PruningReporter uses of an Optuna trial: number, report and should_prune."""

    def __init__(self, prune: bool):
        self.number, self.prune, self.reports = 7, prune, []

    def report(self, value: float, step: int) -> None:
        self.reports.append((value, step))

    def should_prune(self) -> bool:
        return self.prune


def test_the_pruning_reporter_reports_each_epoch_and_stops_the_run_when_told(tmp_path):
    from trainlab.errors import RunEndedEarly
    from trainlab.tuning.objective import PruningReporter, TrialPruned

    kept = FakeTrial(prune=False)
    reporter = PruningReporter(kept, "val_accuracy", tmp_path)
    reporter.epoch_end({"epoch": 1, "val_accuracy": 0.25, "test_accuracy": 0.9})
    reporter.epoch_end({"epoch": 2, "val_accuracy": 0.5})
    assert kept.reports == [(0.25, 1), (0.5, 2)]  # the validation figure with its epoch, never the test figure
    assert reporter.epoch == 2

    pruned = FakeTrial(prune=True)
    reporter = PruningReporter(pruned, "val_loss", tmp_path)
    with pytest.raises(TrialPruned, match=r"^trial 7 pruned after epoch 3$") as raised:
        reporter.epoch_end({"epoch": 3, "val_loss": 1.5})
    assert pruned.reports == [(1.5, 3)]
    assert isinstance(raised.value, RunEndedEarly) and raised.value.status == "pruned"


def test_a_resumed_trial_reports_its_earlier_epochs_to_the_pruner_first(tmp_path):
    from trainlab.training.rundir import RunDirectory
    from trainlab.tuning.objective import PruningReporter

    RunDirectory(tmp_path).write_metrics([{"epoch": 1, "val_accuracy": 0.1}, {"epoch": 2, "val_accuracy": 0.3}])
    trial = FakeTrial(prune=False)
    reporter = PruningReporter(trial, "val_accuracy", tmp_path)
    reporter.start({})
    assert trial.reports == [(0.1, 1), (0.3, 2)]
    assert reporter.epoch == 2


def test_a_trial_far_below_the_median_is_pruned_and_its_run_says_so(tiny_data, tmp_path, run_main, no_run_reports):
    import optuna

    study = tmp_path / "study"
    # Optuna's API queues the points: five good learning rates, then a hopeless one; MedianPruner prunes only
    # once 5 trials are complete, so the sixth meets the median of five at its first epoch
    study.mkdir()
    queued = optuna.create_study(study_name="study", storage=f"sqlite:///{study / 'study.db'}", direction="maximize")
    for lr in (0.01, 0.012, 0.014, 0.016, 0.018, 1e-7):
        queued.enqueue_trial({"lr": lr})
    result = run_main(
        *tune_args(tiny_data, study, "--search", "lr=1e-7:1e-1:log", "--trials", "6", "--json", epochs=3),
        "--optimizer", "adam", "--pruner", "median",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json_summary(result)
    states = [trial["state"] for trial in summary["trials"]]
    assert states == ["complete"] * 5 + ["pruned"]
    assert summary["pruned"] == 1
    hopeless = summary["trials"][5]
    assert hopeless["params"] == {"lr": 1e-7}
    assert hopeless["epochs"] == 1
    assert "  trial 5 pruned after epoch 1" in result.stderr
    run_dir = study / "trial-0005"
    assert hopeless["value"] == read_metrics(run_dir)[0]["val_accuracy"]  # Optuna keeps its last report
    assert [row["epoch"] for row in read_metrics(run_dir)] == [1]  # its files are complete to that epoch
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    recorded = json.loads((run_dir / "summary.json").read_text())
    assert recorded["status"] == "pruned"
    assert recorded["epochs"] == 1
    listed = json_summary(run_main("runs", study, "--json"))["runs"]
    assert [row["status"] for row in listed] == ["finished"] * 5 + ["pruned"]
    assert summary["best"]["number"] != 5


def test_hyperband_gets_the_most_epochs_a_trial_may_run_as_its_resource(tiny_data):
    from trainlab import TrainConfig
    from trainlab.tuning.sampling import pruner_for
    from trainlab.tuning.search import parse_search
    from trainlab.tuning.spec import StudySpec

    base = TrainConfig(epochs=3, val_split=0.2, data_dir=str(tiny_data))
    for search, most in ((["lr=1e-3:1e-1"], 3), (["epochs=2:12"], 12), (["epochs=4,9,6"], 9)):
        spec = StudySpec(base, parse_search(search, base), pruner="hyperband")
        assert pruner_for("hyperband", spec)._max_resource == most


# resume after a kill ----------------------------------------------------------------------------------------------


def test_a_killed_study_resumes_its_running_trial_in_its_own_run_directory(tiny_data, tmp_path):
    study = tmp_path / "study"
    args = tune_args(tiny_data, study, "--search", "lr=1e-2:1e-1:log", "--trials", "3", "--json", epochs=12)
    args += ["--pruner", "none"]
    first = tune_process(*args, log=tmp_path / "logs" / "first")
    checkpoint = study / "trial-0000" / "checkpoints" / "last.pt"
    deadline = time.monotonic() + START_TIMEOUT
    while not checkpoint.exists():
        assert first.poll() is None, (tmp_path / "logs" / "first.err").read_text()
        assert time.monotonic() < deadline, f"no {checkpoint} within {START_TIMEOUT} s"
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    before = read_metrics(study / "trial-0000")  # may lag the checkpoint by an epoch: it is written after it
    assert len(before) < 12, "the first trial finished before the kill"
    (killed,) = trials_of(study)
    assert killed.state.name == "RUNNING" and killed.user_attrs["pid"] == first.pid

    log = tmp_path / "logs" / "second"
    stdout, stderr = finished(tune_process(*args, log=log), log)
    assert "trial 0 was left running by a process that is gone; it runs again, resumed" in stderr
    assert f"Trial 1: lr={killed.params['lr']:.4g} (resuming {study / 'trial-0000'})" in stderr
    assert "  trial 1: Resuming" in stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    trials = summary["trials"]
    assert [(trial["number"], trial["state"]) for trial in trials] == [
        (0, "fail"), (1, "complete"), (2, "complete"), (3, "complete"),
    ]  # fmt: skip
    assert trials[1]["params"] == trials[0]["params"] == killed.params
    assert [trial["run_dir"] for trial in trials[1:]] == [
        str(study / "trial-0000"), str(study / "trial-0002"), str(study / "trial-0003"),
    ]  # fmt: skip
    assert not (study / "trial-0001").exists()  # the resumed trial kept its run directory
    after = read_metrics(study / "trial-0000")
    assert [row["epoch"] for row in after] == list(range(1, 13))  # each epoch once
    assert after[: len(before)] == before  # the epochs run before the kill, as they were
    assert trials[1]["value"] == max(row["val_accuracy"] for row in after)
    assert json.loads((study / "trial-0000" / "summary.json").read_text())["status"] == "finished"


# several processes on one SQLite study ----------------------------------------------------------------------------


def test_two_processes_run_trials_of_one_sqlite_study_at_once(tiny_data, tmp_path):
    study = tmp_path / "study"
    args = tune_args(tiny_data, study, "--search", "lr=1e-3:1e-1:log", "--trials", "4", "--pruner", "none", epochs=2)
    logs = [tmp_path / "logs" / name for name in ("a", "b")]
    processes = [tune_process(*args, log=log) for log in logs]
    outputs = [finished(process, log) for process, log in zip(processes, logs, strict=True)]
    for stdout, stderr in outputs:
        assert "database is locked" not in stdout + stderr
        assert "Traceback" not in stdout + stderr
    trials = trials_of(study)
    states = [trial.state.name for trial in trials]
    assert states.count("COMPLETE") >= 4
    assert set(states) == {"COMPLETE"}  # both ended: nothing is left running
    run_dirs = [trial.user_attrs["run_dir"] for trial in trials]
    assert run_dirs == [str(study / f"trial-{trial.number:04d}") for trial in trials]  # one folder each
    for run_dir in run_dirs:
        assert [row["epoch"] for row in read_metrics(Path(run_dir))] == [1, 2]
    assert {trial.user_attrs["pid"] for trial in trials} <= {process.pid for process in processes}
    learning_rates = [trial.params["lr"] for trial in trials]
    assert len(set(learning_rates)) == len(learning_rates)  # the processes never try the same point twice


def test_the_same_study_in_a_new_folder_draws_the_same_points(tiny_data, tmp_path, run_main, no_run_reports):
    drawn = []
    for folder in ("one", "two"):
        args = tune_args(tiny_data, tmp_path / folder, "--search", "lr=1e-3:1e-1:log", "optimizer=sgd,adam")
        result = run_main(*args, "--trials", "2", "--json")
        assert result.returncode == 0, result.stderr
        drawn.append([trial["params"] for trial in json_summary(result)["trials"]])
    assert drawn[0] == drawn[1]
    assert drawn[0][0] != drawn[0][1]


# a study folder keeps its settings --------------------------------------------------------------------------------


def test_a_study_folder_refuses_other_settings_and_continues_with_just_its_run_dir(
    tiny_data, tmp_path, run_main, no_run_reports
):
    study = tmp_path / "study"
    result = run_main(*tune_args(tiny_data, study, "--search", "lr=1e-3:1e-1:log", "--trials", "2"))
    assert result.returncode == 0, result.stderr
    recorded = (study / "study.toml").read_bytes()

    other = run_main(*tune_args(tiny_data, study, "--search", "lr=1e-4:1e-1:log", "--trials", "3"))
    assert_one_line_error(
        other,
        f"{study} holds a study with other settings (search differ from {study / 'study.toml'}); rerun it with "
        "its own flags (or just --run-dir), or choose another --run-dir",
    )
    longer = run_main(*tune_args(tiny_data, study, "--search", "lr=1e-3:1e-1:log", "--trials", "3", epochs=2))
    assert_one_line_error(longer, "(config differ from", "study.toml")
    assert (study / "study.toml").read_bytes() == recorded
    assert len(trials_of(study)) == 2  # nothing ran

    same = run_main("tune", "--run-dir", study, "--trials", "2", "--no-download")
    assert same.returncode == 0, same.stderr
    assert f"Study study in {study}: 2 of 2 trials finished" in same.stdout
    assert len(trials_of(study)) == 2  # done already

    more = run_main("tune", "--run-dir", study, "--trials", "3", "--no-download", "--json")
    assert more.returncode == 0, more.stderr
    assert f"Study study in {study}: 2 of 3 trials finished" in more.stderr
    summary = json_summary(more)
    assert [trial["state"] for trial in summary["trials"]] == ["complete"] * 3
    third = summary["trials"][2]
    assert 1e-3 <= third["params"]["lr"] <= 1e-1
    assert third["params"]["lr"] not in [trial["params"]["lr"] for trial in summary["trials"][:2]]
    assert third["epochs"] == 1  # the recorded config, not train's defaults
    assert (study / "study.toml").read_bytes() == recorded


# a [search] table in the config file ------------------------------------------------------------------------------


def test_a_search_table_in_the_config_is_the_search_and_train_refuses_it(tiny_data, tmp_path, run_main, no_run_reports):
    config = tmp_path / "tune.toml"
    config.write_text(
        f'data_dir = "{tiny_data}"\nval_split = 0.2\nepochs = 1\nlimit_train_batches = 2\n\n'
        '[search]\nlr = "1e-3:1e-1:log"\noptimizer = ["sgd", "adam"]\nbatch-size = { low = 32, high = 64 }\n'
    )
    study = tmp_path / "study"
    result = run_main("tune", "--config", config, *TINY, "--trials", "2", "--run-dir", study, "--json")
    assert result.returncode == 0, result.stderr
    summary = json_summary(result)
    assert [trial["state"] for trial in summary["trials"]] == ["complete"] * 2
    for trial in summary["trials"]:
        assert sorted(trial["params"]) == ["batch_size", "lr", "optimizer"]
        assert 32 <= trial["params"]["batch_size"] <= 64
    recorded = (study / "study.toml").read_text()
    assert 'search = [\n    "lr=0.001:0.1:log",\n    "optimizer=sgd,adam",\n    "batch_size=32:64",\n]' in recorded
    assert "[search]" not in (study / "best.toml").read_text()

    # the same search on the command line is the same study
    same = run_main(
        "tune", "--config", config, *TINY, "--trials", "2", "--run-dir", study,
        "--search", "lr=1e-3:1e-1:log", "optimizer=sgd,adam", "batch_size=32:64",
    )  # fmt: skip
    assert same.returncode == 0, same.stderr
    assert f"Study study in {study}: 2 of 2 trials finished" in same.stdout

    refused = run_main("train", "--config", config, "--run-dir", tmp_path / "train", *TINY)
    assert_one_line_error(
        refused,
        f"{config}: its [search] table is read by `trainlab tune`; train one config without it (a study's "
        "best.toml has none)",
    )
    assert not (tmp_path / "train").exists()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("lr = 0.1", '[search] lr: expected "LOW:HIGH[:log]", a list of choices or a table, got 0.1'),
        ('device = ["cpu"]', "[search] device: 'device' is not a key a trial can vary"),
        ("lr = { low = 1e-3 }", "[search] lr: a range table needs low and high (and optionally log), got ['low']"),
        ("batch_size = [64, 0.5]", "[search] batch_size: this key takes whole numbers, got 0.5"),
        ('lr = "1e-1:1e-3:log"', "[search] lr=1e-1:1e-3:log: the range is empty; LOW must be below HIGH"),
    ],
)
def test_a_bad_search_table_is_one_line_naming_the_file(tiny_data, tmp_path, run_main, table, message):
    config = tmp_path / "tune.toml"
    config.write_text(f"val_split = 0.2\n\n[search]\n{table}\n")
    study = tmp_path / "study"
    result = run_main("tune", "--config", config, "--data-dir", tiny_data, *TINY, "--run-dir", study)
    assert_one_line_error(result, f"{config} {message}")
    assert not study.exists()


def test_an_unknown_built_in_model_in_a_search_table_is_refused_before_any_trial_naming_the_file_and_the_models(
    tiny_data, tmp_path, run_main
):
    config = tmp_path / "tune.toml"
    config.write_text('val_split = 0.2\n\n[search]\nmodel = ["mlp", "foo"]\n')
    study = tmp_path / "study"
    result = run_main("tune", "--config", config, "--data-dir", tiny_data, *TINY, "--run-dir", study)
    line = assert_one_line_error(result)
    assert line == (
        f"trainlab tune: error: {config} [search] model: unknown model 'foo'; choose from: cnn, mlp, resnet, "
        "tv:NAME (torchvision), or your own as package.module:Class"
    )
    assert result.stdout == ""  # no trial started
    assert not study.exists()


def test_a_search_key_that_is_not_a_table_is_refused(tiny_data, tmp_path, run_main):
    config = tmp_path / "tune.toml"
    config.write_text('val_split = 0.2\nsearch = "lr=1e-3:1e-1"\n')
    result = run_main("tune", "--config", config, "--data-dir", tiny_data, *TINY, "--run-dir", tmp_path / "s")
    assert_one_line_error(result, f"{config}: search must be a table ([search]) of KEY = SPEC")
    assert not (tmp_path / "s").exists()


def test_a_study_searching_a_torchvision_model_continues_from_its_folder(tiny_data, tmp_path, run_main, no_run_reports):
    config = tmp_path / "tune.toml"
    config.write_text('[search]\nmodel = ["mlp", "tv:resnet18"]\n')
    study = tmp_path / "study"
    result = run_main(*tune_args(tiny_data, study, "--config", config, "--trials", "1"))
    assert result.returncode == 0, result.stderr
    assert 'search = [\n    "model=mlp,tv:resnet18",\n]' in (study / "study.toml").read_text()
    again = run_main("tune", "--run-dir", study, "--trials", "1", "--no-download")
    assert again.returncode == 0, again.stderr  # the recorded space reads back as two choices, not one name
    assert f"Study study in {study}: 1 of 1 trials finished" in again.stdout


def test_a_model_choice_holds_its_colon_and_other_names_still_refuse_a_range(tiny_data):
    from trainlab.config import TrainConfig
    from trainlab.tuning.search import parse_search

    base = TrainConfig(data_dir=str(tiny_data), val_split=0.2)
    (model,) = parse_search(["model=mlp,tv:resnet18,my_pkg.nets:Net"], base)
    assert model.choices == ("mlp", "tv:resnet18", "my_pkg.nets:Net")
    assert parse_search([model.spec()], base) == [model]
    from trainlab.errors import ConfigError

    with pytest.raises(ConfigError, match="optimizer takes a name, not a range; list the choices as A,B"):
        parse_search(["optimizer=sgd:adam"], base)


# the study's folder and database ----------------------------------------------------------------------------------


def test_a_study_folder_on_a_read_only_disk_is_one_line_before_anything_starts(
    tiny_data, tmp_path, run_main, monkeypatch
):
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access  # a read-only file system answers access() with EROFS, for root too
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode))
    study = locked / "study"
    result = run_main(*tune_args(tiny_data, study, "--search", "lr=1e-3:1e-1:log", "--trials", "1"))
    assert_one_line_error(
        result, f"--run-dir {study}: {locked} cannot be written (read-only); give a --run-dir on a disk you can write"
    )
    assert not study.exists()


@pytest.mark.parametrize(
    ("url", "bounds"),
    [
        ("sqlite:///study.db", {"timeout": 60}),
        (
            "postgresql+psycopg2://me@db/optuna",
            {"connect_timeout": 10, "options": "-c statement_timeout=60000"},
        ),
        ("postgresql://me@db/optuna", {"connect_timeout": 10, "options": "-c statement_timeout=60000"}),
        ("postgresql+psycopg://me@db/optuna?connect_timeout=3", {"options": "-c statement_timeout=60000"}),
        ("postgresql+pg8000://me@db/optuna", {"timeout": 60}),
        ("mysql+pymysql://me@db/optuna", {"connect_timeout": 10, "read_timeout": 60, "write_timeout": 60}),
        ("mysql+mysqlconnector://me@db/optuna", {"connection_timeout": 10}),
    ],
)
def test_every_known_database_driver_gets_bounded_connections_and_statements(url, bounds):
    from trainlab.tuning.storage import connect_args_for

    assert connect_args_for(url) == bounds  # a bound the URL already gives is the user's


def test_a_database_server_that_never_answers_ends_tune_in_one_line(tiny_data, tmp_path, run_main, monkeypatch):
    """No PostgreSQL driver is installed here: Optuna's storage is made to hang as a driver without a timeout of
    its own does at a server that accepts and never answers; the deadline around it ends the command."""
    import threading

    import optuna

    from trainlab.tuning import storage

    opened, release = [], threading.Event()

    def never_answers(url, engine_kwargs=None, **kwargs):
        opened.append((url, engine_kwargs))
        release.wait()

    monkeypatch.setattr(optuna.storages, "RDBStorage", never_answers)
    monkeypatch.setattr(storage, "OPEN_SECONDS", 1.0)
    url = "postgresql+psycopg2://me:secret@127.0.0.1:9/optuna"
    study = tmp_path / "study"
    try:
        result = run_main(*tune_args(tiny_data, study, "--search", "lr=1e-3:1e-1:log", "--storage", url))
    finally:
        release.set()
    assert_one_line_error(
        result,
        "--storage postgresql+psycopg2://me:***@127.0.0.1:9/optuna: cannot open the study database (no answer within "
        "1 s; check that its server runs, and the URL's host and port)",
    )
    assert opened == [(url, {"connect_args": {"connect_timeout": 10, "options": "-c statement_timeout=60000"}})]
    assert not study.exists()


def refused_storage_line(url: str, tiny_data, tmp_path, run_main) -> str:
    """The one line `tune --storage URL` ends in; its study folder never made."""
    study = tmp_path / "study"
    result = run_main(*tune_args(tiny_data, study, "--search", "lr=1e-3:1e-1:log", "--storage", url))
    line = assert_one_line_error(result)
    assert not study.exists()
    return line


@pytest.mark.parametrize(
    "url, dialect",
    [
        ("bogus://x", "bogus"),
        ("bogus+x://me:secret@db/optuna", "bogus+x"),
        ("postgresql+nodriver://db/x", "postgresql+nodriver"),
    ],
)
def test_a_storage_url_of_a_dialect_sqlalchemy_lacks_is_refused_naming_the_dialect_and_urls_that_work(
    url, dialect, tiny_data, tmp_path, run_main
):
    line = refused_storage_line(url, tiny_data, tmp_path, run_main)
    assert line == (
        f"trainlab tune: error: --storage {url.replace('secret', '***')}: SQLAlchemy has no database dialect "
        f"'{dialect}'; give sqlite:///PATH, postgresql://USER@HOST/DB or mysql+pymysql://USER@HOST/DB "
        "(any SQLAlchemy URL)"
    )


@pytest.mark.parametrize(
    "url, driver, package",
    [
        ("postgresql://me:secret@db/optuna", "psycopg", "'psycopg[binary]'"),
        ("postgresql+psycopg2://me@db/optuna", "psycopg2", "psycopg2-binary"),
        ("mysql+pymysql://me@db/optuna", "pymysql", "pymysql"),
    ],
)
def test_a_storage_url_whose_driver_is_not_installed_names_the_package_to_install(
    url, driver, package, tiny_data, tmp_path, run_main, monkeypatch
):
    monkeypatch.setitem(sys.modules, driver, None)  # not installed, even where CI has it
    line = refused_storage_line(url, tiny_data, tmp_path, run_main)
    assert line == (
        f"trainlab tune: error: --storage {url.replace('secret', '***')}: its driver {driver} cannot be imported "
        f"(import of {driver} halted; None in sys.modules); pip install {package}"
    )
