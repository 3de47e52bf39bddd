"""Several processes: torchrun + DDP on CPU (gloo) — the same weights as one process, exact evaluation, one writer,
a failing process stopping the rest, exact resume after a SIGKILL, and two "nodes" on this machine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from trainlab.testing.serving import free_port

from conftest import read_metrics, write_fashion_layout

TESTS = Path(__file__).resolve().parent
TORCHRUN = (sys.executable, "-m", "torch.distributed.run")
QUICK = ("--device", "cpu", "--no-download", "--log-every", "1000")


def environment(**extra: str) -> dict[str, str]:
    """One thread per process (two torch processes on two cores slow each other badly otherwise), tests/ importable
    for the test models, and a short collective timeout so that a broken test fails instead of hanging."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TRAINLAB_DIST_TIMEOUT": "60"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    env.pop("TRAINLAB_DATA_DIR", None)
    env.update(extra)
    return env


def trainlab(*args, timeout: float = 240, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "trainlab", *map(str, args)],
        env=environment(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def slow_launch(tiny_data: Path, run: Path, nproc_flag: str = "--nproc") -> list[str]:
    """`trainlab train` of two SlowMLP processes for 3 epochs with a checkpoint every 4 steps: time to stop it."""
    return [
        sys.executable, "-m", "trainlab", "train", nproc_flag, "2", "--model", "ddp_models:SlowMLP",
        "--data-dir", str(tiny_data), *QUICK, "--epochs", "3", "--batch-size", "16", "--checkpoint-every", "4",
        "--run-dir", str(run),
    ]  # fmt: skip


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    from trainlab.checkpoint import load_checkpoint

    return load_checkpoint(run_dir / "checkpoints" / "last.pt").model_state


def test_two_processes_train_what_one_process_trains_with_the_same_global_batch(tiny_data, tmp_path, run_main):
    common = ("--data-dir", tiny_data, *QUICK, "--epochs", "2", "--shuffle", "--optimizer", "adam")
    one = run_main("train", *common, "--batch-size", "64", "--threads", "1", "--run-dir", tmp_path / "one")
    assert one.returncode == 0, one.stderr  # the one-process reference trains in this process (no start-up)
    two = trainlab("train", "--nproc", "2", *common, "--global-batch-size", "64", "--run-dir", tmp_path / "two")
    assert two.returncode == 0, two.stderr
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert max(float((a[key] - b[key]).abs().max()) for key in a) < 1e-5
    rows_one, rows_two = read_metrics(tmp_path / "one"), read_metrics(tmp_path / "two")
    assert [row["epoch"] for row in rows_two] == [1, 2]  # one writer: one row per epoch
    for first, second in zip(rows_one, rows_two, strict=True):
        assert first["test_accuracy"] == second["test_accuracy"]
        assert first["train_loss"] == pytest.approx(second["train_loss"], rel=1e-5)
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir()) == ["last.pt"]
    assert two.stdout.count("Done!") == 1  # only rank 0 prints
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["steps"] == 2 * 10  # 640 / 64 per step


def test_evaluation_counts_every_test_image_once_whatever_the_number_of_processes(tmp_path, run_main):
    """Three processes: 10,001 test images split 3334 / 3334 / 3333, none a multiple of the eval batch (two
    processes share the same code; test_shards_cover_every_sample_once_in_equal_step_counts checks both splits)."""
    data = write_fashion_layout(tmp_path / "data", train_count=600, test_count=10_001)
    run = tmp_path / "run"
    trained = trainlab(
        "train", "--nproc", "3", "--data-dir", data, *QUICK, "--epochs", "1", "--batch-size", "20",
        "--eval-batch-size", "777", "--run-dir", run,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    reported = read_metrics(run)[-1]
    single = run_main("evaluate", run, "--data-dir", data, "--device", "cpu", "--threads", "1", "--json")
    assert single.returncode == 0, single.stderr
    evaluated = json.loads(single.stdout.strip().splitlines()[-1])
    assert evaluated["samples"] == 10_001
    assert reported["test_accuracy"] == evaluated["accuracy"]  # not one padded duplicate counted
    assert reported["test_loss"] == pytest.approx(evaluated["loss"], rel=1e-6)  # float32 batch means, other batches


def test_an_error_on_one_process_stops_every_process_within_seconds_and_is_shown_once(tiny_data, tmp_path):
    started = time.monotonic()
    result = trainlab(
        "train", "--nproc", "2", "--model", "ddp_models:FailsOnRankOne", "--data-dir", tiny_data, *QUICK,
        "--epochs", "3", "--run-dir", tmp_path / "run", timeout=120,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.returncode != 0
    assert elapsed < 60, f"the other process waited {elapsed:.0f} s"  # a hang would run into the 60 s timeout
    assert result.returncode == 1
    assert result.stderr.splitlines() == [  # one line, from the launcher: no "stopped" line, no launcher's own
        "trainlab train (rank 1): unexpected error: RuntimeError: rank one broke on purpose (rerun with --debug "
        "for the traceback)"
    ]


def test_a_ddp_run_killed_mid_epoch_resumes_bit_identical_to_an_uninterrupted_one(tiny_data, tmp_path):
    common = (
        "--model", "ddp_models:SlowMLP", "--data-dir", tiny_data, *QUICK, "--epochs", "2", "--batch-size", "16",
        "--shuffle", "--augment", "--checkpoint-every", "4", "--optimizer", "adam",
    )  # fmt: skip
    whole = trainlab("train", "--nproc", "2", *common, "--run-dir", tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr

    killed = tmp_path / "killed"
    mark = f"killed-{os.getpid()}"
    launcher = subprocess.Popen(
        [sys.executable, "-m", "trainlab", "train", "--nproc", "2", *map(str, common), "--run-dir", str(killed)],
        env=environment(TRAINLAB_TEST_MARK=mark),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the launcher and torchrun
    )
    deadline = time.monotonic() + 120
    while not (killed / "checkpoints" / "last.pt").is_file():
        assert launcher.poll() is None, "the run ended before the test could kill it"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # torchrun starts each trainer in a session of its own: killing the launcher's group leaves them training
    # (and finishing the run a second later); a whole launch that dies (a crash, the OOM killer) takes them too
    trainers = processes_marked(mark, "0") + processes_marked(mark, "1")
    assert len(trainers) == 2
    for pid in trainers:
        os.kill(pid, signal.SIGKILL)
    os.killpg(launcher.pid, signal.SIGKILL)
    launcher.wait()
    while any(Path(f"/proc/{pid}").exists() and "Z" not in process_state(pid) for pid in trainers):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert read_metrics(killed) == []  # killed in the middle of epoch 1

    wrong = trainlab("train", "--resume", killed, "--trust-model-code", "--device", "cpu")
    assert wrong.returncode == 2
    assert "was trained by 2 process(es) and this run has 1; resume it with --nproc 2" in wrong.stderr

    resumed = trainlab("train", "--nproc", "2", "--resume", killed, "--trust-model-code")
    assert resumed.returncode == 0, resumed.stderr
    a, b = weights(tmp_path / "whole"), weights(killed)
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert read_metrics(killed)[-1]["test_loss"] == read_metrics(tmp_path / "whole")[-1]["test_loss"]


def process_state(pid: int) -> str:
    """The state letter in /proc/PID/stat (Z: a zombie, dead but not yet reaped), or "" once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def processes_marked(mark: str, rank: str) -> list[int]:
    """The pids of this test's torchrun workers of one rank (found by an environment marker)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            variables = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if f"TRAINLAB_TEST_MARK={mark}".encode() in variables and f"RANK={rank}".encode() in variables:
            pids.append(int(entry.name))
    return pids


def test_a_signal_to_one_process_stops_every_process_with_one_checkpoint_and_resume_finishes(tiny_data, tmp_path):
    run = tmp_path / "run"
    mark = f"signal-{os.getpid()}"
    launcher = subprocess.Popen(
        slow_launch(tiny_data, run),
        env=environment(TRAINLAB_TEST_MARK=mark),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (run / "checkpoints" / "last.pt").is_file():
        assert launcher.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    workers = [pid for pid in processes_marked(mark, "1") if pid != launcher.pid]
    assert len(workers) == 1
    os.kill(workers[0], signal.SIGTERM)  # rank 1 only: rank 0 learns of it at the next step
    stdout, stderr = launcher.communicate(timeout=120)
    assert launcher.returncode == 128 + signal.SIGTERM, stderr
    assert stderr.count("SIGTERM received: checkpoint saved; resume with: trainlab train --resume") == 1, stderr
    assert f"--resume {run} --nproc 2" in stderr
    stopped_at = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else None
    assert stopped_at is None  # stopped, not finished
    resumed = trainlab("train", "--nproc", "2", "--resume", run, "--trust-model-code")
    assert resumed.returncode == 0, resumed.stderr
    assert [row["epoch"] for row in read_metrics(run)] == [1, 2, 3]


def test_two_nodes_on_this_machine_rendezvous_and_train_one_run(tiny_data, tmp_path, run_main):
    port = free_port()
    run = tmp_path / "run"
    train = ("-m", "trainlab", "train", "--data-dir", tiny_data, *QUICK, "--epochs", "1", "--run-dir", run)
    nodes = [
        subprocess.Popen(
            [
                *TORCHRUN,
                "--nnodes",
                "2",
                "--node-rank",
                str(rank),
                "--nproc-per-node",
                "1",
                "--rdzv-backend",
                "c10d",
                "--rdzv-endpoint",
                f"127.0.0.1:{port}",
                "--rdzv-id",
                "trainlab-test",
                *map(str, train),
            ],  # fmt: skip
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=240) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs
    assert [row["epoch"] for row in read_metrics(run)] == [1]
    single = run_main("train", "--data-dir", tiny_data, *QUICK, "--epochs", "1", "--batch-size", "128",
                      "--threads", "1", "--run-dir", tmp_path / "single")  # fmt: skip
    assert single.returncode == 0, single.stderr
    a, b = weights(run), weights(tmp_path / "single")
    assert max(float((a[key] - b[key]).abs().max()) for key in a) < 1e-5  # 2 x 64 per step = one process's 128


def test_sync_batchnorm_on_cpu_processes_is_refused_in_one_line_and_nothing_is_written(tiny_data, tmp_path):
    result = trainlab(
        "train", "--nproc", "2", "--model", "cnn", "--sync-batchnorm", "--data-dir", tiny_data, *QUICK,
        "--epochs", "1", "--run-dir", tmp_path / "run",
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("--sync-batchnorm needs CUDA processes") == 1  # said once, by rank 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # one line, from the launcher
    assert not (tmp_path / "run").exists()


def test_a_nan_on_one_process_sends_every_process_back_together_at_a_lower_lr_said_once(tiny_data, tmp_path):
    result = trainlab(
        "train", "--nproc", "2", "--model", "ddp_models:NanOnRankOne", "--data-dir", tiny_data, *QUICK,
        "--epochs", "2", "--checkpoint-every", "2", "--run-dir", tmp_path / "run",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    message = (
        "loss became nan at step 3 (epoch batch 3): back to the state after epoch 0, step 2, with lr 0.0003 "
        "instead of 0.001 (return 1 of 3)"
    )
    assert (result.stdout + result.stderr).count(message) == 1  # both processes went back; rank 0 says it
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs"] == 2
    assert "lr = 0.0003" in (tmp_path / "run" / "config.toml").read_text()


def test_bf16_autocast_trains_under_ddp(tiny_data, tmp_path):
    result = trainlab(
        "train", "--nproc", "2", "--precision", "bf16", "--data-dir", tiny_data, *QUICK, "--epochs", "1",
        "--limit-train-batches", "3", "--run-dir", tmp_path / "run",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 3


def test_nproc_refuses_bad_values_before_starting_anything(tmp_path, run_main):
    from conftest import assert_one_line_error

    assert_one_line_error(run_main("train", "--nproc", "0"), "--nproc: expected a number of processes from 1 to 1024")
    result = run_main("train", "--nproc", "2", "--global-batch-size", "63", "--run-dir", tmp_path / "r")
    assert result.returncode == 2
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("flag", "stop"),
    [("--nproc", "SIGTERM to the launcher's group"), ("--npro", "Ctrl-C")],  # --npro: argparse's abbreviation
)
def test_a_signal_to_the_launcher_stops_every_process_in_one_line_with_its_exit_status(flag, stop, tiny_data, tmp_path):
    run = tmp_path / "run"
    launcher = subprocess.Popen(
        [*slow_launch(tiny_data, run, flag), "--quiet"],
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a group of its own, as a shell gives a command
    )
    deadline = time.monotonic() + 120
    while not (run / "checkpoints" / "last.pt").is_file():
        assert launcher.poll() is None and time.monotonic() < deadline, launcher.stderr.read()
        time.sleep(0.05)
    if stop == "Ctrl-C":
        os.kill(launcher.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the launcher: torchrun's trainers have
    else:  # sessions of their own
        os.killpg(launcher.pid, signal.SIGTERM)
    _, stderr = launcher.communicate(timeout=120)
    name = "SIGINT" if stop == "Ctrl-C" else "SIGTERM"
    assert launcher.returncode == 128 + signal.Signals[name], stderr
    assert stderr.splitlines() == [
        f"{name} received: checkpoint saved; resume with: trainlab train --resume {run} --nproc 2"
    ]
    assert not (run / "summary.json").exists()  # stopped, not finished
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.pt"]


def test_nproc_abbreviated_is_taken_out_of_the_processes_command_line_like_nproc():
    from trainlab.cli.launch import without_nproc

    for given in (["--nproc", "2"], ["--npro", "2"], ["--np", "2"], ["--nproc=2"], ["--npr=2"]):
        assert without_nproc(["train", *given, "--no-download", "--run-dir", "r"]) == [
            "train", "--no-download", "--run-dir", "r",
        ]  # fmt: skip


def test_bad_input_under_nproc_is_one_line_before_any_process_starts(tiny_data, tmp_path, run_main):
    from conftest import assert_one_line_error, train_tiny_run

    _, one_process_run = train_tiny_run(tmp_path / "one")
    (tmp_path / "exists").mkdir()
    (tmp_path / "exists" / "config.toml").write_text("epochs = 1\n")
    common = ("train", "--nproc", "2", "--device", "cpu", "--no-download")
    assert_one_line_error(
        run_main(*common, "--data-dir", tiny_data, "--run-dir", tmp_path / "exists"),
        f"trainlab train: error: run directory {tmp_path / 'exists'} already exists",
    )
    missing = tmp_path / "missing.csv"
    assert_one_line_error(
        run_main(*common, "--model", "mlp", "--dataset", "csv", "--annotations", missing, "--image-dir", tmp_path,
                 "--run-dir", tmp_path / "csv"),
        f"trainlab train: error: annotations file {missing} does not exist",
    )  # fmt: skip
    assert_one_line_error(
        run_main("train", "--nproc", "2", "--resume", one_process_run),
        "was trained by 1 process(es) and this run has 2; resume it without torchrun",
    )
    assert not (tmp_path / "csv").exists()


@pytest.mark.parametrize("value", ["abc", "", "nan", "-5", "0", "1e300", "inf"])
def test_a_bad_collective_timeout_is_one_line_before_any_process_starts(
    value, tiny_data, tmp_path, run_main, monkeypatch
):
    monkeypatch.setenv("TRAINLAB_DIST_TIMEOUT", value)
    result = run_main("train", "--nproc", "2", "--data-dir", tiny_data, "--run-dir", tmp_path / "run", "--no-download")
    from conftest import assert_one_line_error

    assert_one_line_error(
        result,
        f"TRAINLAB_DIST_TIMEOUT must be the seconds a collective may wait, above 0 and up to 604,800 (a week), "
        f"got {value!r}",
    )
    assert not (tmp_path / "run").exists()


def test_shards_cover_every_sample_once_in_equal_step_counts():
    from trainlab.data.memory import eval_range, shard_ranges

    for size, batch, world in [(640, 32, 2), (1000, 64, 3), (10, 4, 2), (7, 2, 3), (100, 1, 4)]:
        parts = [shard_ranges(size, batch, rank, world) for rank in range(world)]
        assert len({len(part) for part in parts}) == 1  # the same number of steps on every process
        covered = sorted(i for part in parts for start, stop in part for i in range(start, stop))
        assert covered == list(range(len(covered)))  # no sample twice, none skipped but a short tail
        assert size - len(covered) < world  # at most world - 1 left for the next epoch's order
    for size, world in [(10_001, 2), (10_001, 3), (5, 8)]:
        ranges = [eval_range(size, rank, world) for rank in range(world)]
        assert sum(stop - start for start, stop in ranges) == size
        assert all(ranges[i][1] == ranges[i + 1][0] for i in range(world - 1))
