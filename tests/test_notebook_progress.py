"""trainlab.fit in a notebook: progress shown the notebook way, silent in a script, and an interrupt that ends the run
as Ctrl-C ends `trainlab train` (checkpoint, one line saying how to resume, no traceback). The real-kernel tests
drive a Jupyter kernel from this venv through jupyter_client, as a notebook front end does."""

from __future__ import annotations

import queue
import sys
import time
from pathlib import Path

import pytest
import torch

from trainlab.engine.reporting import Reporter

pytest.importorskip("ipykernel", reason="the notebook extra (pip install -e .[notebook]) is not installed")


def tiny_config(data_dir: Path, **changes):
    from trainlab import TrainConfig

    return TrainConfig(device="cpu", threads=1, data_dir=str(data_dir), **changes)


class InterruptAt(Reporter):
    """Raises KeyboardInterrupt from the reporter calls named in `at` ((method, step) pairs), as a user's own
    reporter or a stop button would mid-epoch."""

    def __init__(self, *at: tuple[str, int]):
        self.at, self.steps = set(at), 0

    def batch_log(self, loss: float, current: int, size: int) -> None:
        if ("batch_log", self.steps + 1) in self.at:
            raise KeyboardInterrupt

    def step(self, loss: float, batch_size: int) -> None:
        self.steps += 1
        if ("step", self.steps) in self.at:
            raise KeyboardInterrupt


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    from trainlab import load_checkpoint

    return load_checkpoint(run_dir / "checkpoints" / "last.pt").model_state


def test_a_keyboard_interrupt_mid_epoch_saves_the_checkpoint_says_how_to_resume_and_fit_returns(
    tiny_data, tmp_path, capsys
):
    from trainlab import fit

    config = tiny_config(tiny_data, epochs=2, log_every=1)
    summary = fit(config, run_dir=tmp_path / "run", reporter=InterruptAt(("step", 4)))
    run = str(tmp_path / "run")
    assert summary["status"] == "interrupted"
    assert (summary["epochs"], summary["steps"]) == (0, 4)
    assert capsys.readouterr().err == (
        f"Interrupted (SIGINT): checkpoint saved at step 4; resume with fit(..., run_dir={run!r}, resume=True) with "
        f"the same arguments, or: trainlab train --resume {run}\n"
    )
    resumed = fit(config, run_dir=tmp_path / "run", resume=True)
    assert (resumed["status"], resumed["steps"]) == ("finished", 20)
    fit(config, run_dir=tmp_path / "whole")
    for key, tensor in weights(tmp_path / "whole").items():
        assert torch.equal(weights(tmp_path / "run")[key], tensor), key  # the resume is exact


def test_a_second_interrupt_stops_at_once_with_a_short_keyboard_interrupt_naming_the_resume(tiny_data, tmp_path):
    from trainlab import fit

    config = tiny_config(tiny_data, epochs=2, log_every=1)
    with pytest.raises(KeyboardInterrupt) as raised:
        fit(config, run_dir=tmp_path / "run", reporter=InterruptAt(("batch_log", 13), ("step", 13)))
    run = str(tmp_path / "run")
    assert str(raised.value) == (
        f"stopped at once: {run} keeps its last checkpoint, if it wrote one; resume with "
        f"fit(..., run_dir={run!r}, resume=True) with the same arguments, or: trainlab train --resume {run}"
    )
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert len(raised.traceback) == 3  # this test's line, fit's and its interrupt handler's: no trainer frames
    assert fit(config, run_dir=tmp_path / "run", resume=True)["status"] == "finished"  # from epoch 1's checkpoint


def test_on_interrupt_raise_keeps_the_training_interrupted_exception(tiny_data, tmp_path):
    from trainlab import fit
    from trainlab.errors import TrainingInterrupted, TrainlabError

    with pytest.raises(TrainingInterrupted, match="SIGINT received: checkpoint saved"):
        fit(tiny_config(tiny_data), run_dir=tmp_path / "run", reporter=InterruptAt(("step", 2)), on_interrupt="raise")
    with pytest.raises(TrainlabError, match=r"^on_interrupt='ignore': use 'return' \(the default\) or 'raise'$"):
        fit(tiny_config(tiny_data), run_dir=tmp_path / "other", on_interrupt="ignore")


def test_fit_in_a_script_prints_nothing_by_default_and_the_console_lines_with_progress_true(
    tiny_data, tmp_path, capsys
):
    from trainlab import fit

    fit(tiny_config(tiny_data, epochs=1), run_dir=tmp_path / "quiet")
    assert capsys.readouterr() == ("", "")
    fit(tiny_config(tiny_data, epochs=1), run_dir=tmp_path / "shown", progress=True)
    out = capsys.readouterr().out
    assert out.startswith("Using cpu device\n")
    assert "Test Error: \n Accuracy: " in out and "Done!" in out


def test_run_reporters_adds_the_notebook_reporter_only_in_a_kernel_or_when_asked(monkeypatch):
    from trainlab.reports import notebook
    from trainlab.reports.console import ConsoleReporter
    from trainlab.tuning import interactive
    from trainlab.tuning.interactive import progress_reporter

    mine = Reporter()
    monkeypatch.setattr(interactive, "in_jupyter_kernel", lambda: True)
    assert isinstance(progress_reporter(None, None), notebook.NotebookReporter)
    assert progress_reporter(None, mine) is None  # the caller's own reporter shows what it wants
    assert isinstance(progress_reporter(True, mine), notebook.NotebookReporter)
    assert progress_reporter(False, None) is None
    monkeypatch.setattr(interactive, "in_jupyter_kernel", lambda: False)
    assert progress_reporter(None, None) is None
    assert isinstance(progress_reporter(True, None), ConsoleReporter)
    assert not notebook.in_jupyter_kernel()  # pytest is no kernel


def test_the_epoch_table_shows_the_console_figures_as_html_and_text():
    from trainlab.reports.notebook import EpochTable

    rows = [
        {"epoch": 1, "train_loss": 2.3, "test_loss": 2.25, "test_accuracy": 0.4913, "lr": 0.001,
         "machine_samples_per_second": 26284.4, "machine_seconds": 1.42},
    ]  # fmt: skip
    table = EpochTable(rows)
    assert table._repr_html_() == (
        "<table><thead><tr><th>epoch</th><th>train loss</th><th>test loss</th><th>test accuracy</th><th>lr</th>"
        "<th>images/s</th><th>seconds</th></tr></thead><tbody><tr><td>1</td><td>2.3000</td><td>2.2500</td>"
        "<td>49.1%</td><td>0.001</td><td>26,284</td><td>1.4</td></tr></tbody></table>"
    )
    assert repr(table).splitlines() == [
        "epoch  train loss  test loss  test accuracy     lr  images/s  seconds",
        "    1      2.3000     2.2500          49.1%  0.001    26,284      1.4",
    ]


# a real Jupyter kernel --------------------------------------------------------------------------------------------


class Kernel:
    """A Jupyter kernel of this venv's python3 kernelspec, started in `cwd`, driven as a front end drives it."""

    def __init__(self, cwd: Path):
        from jupyter_client.manager import start_new_kernel

        self.manager, self.client = start_new_kernel(kernel_name="python3", cwd=str(cwd), startup_timeout=60)

    def run(self, code: str, timeout: float = 60, interrupt_after: str | None = None) -> tuple[dict, list[dict]]:
        """Execute `code`; returns its reply's content and its output messages (an interrupt is sent once a
        stream output, or a displayed object's text, holds `interrupt_after`)."""
        message_id = self.client.execute(code)
        outputs, deadline = [], time.monotonic() + timeout
        while True:
            try:
                message = self.client.get_iopub_msg(timeout=max(deadline - time.monotonic(), 0.1))
            except queue.Empty:
                raise AssertionError(f"no answer from the kernel in {timeout} s: {outputs}") from None
            if message["parent_header"].get("msg_id") != message_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "status" and content["execution_state"] == "idle":
                break
            if kind in ("stream", "display_data", "update_display_data", "execute_result", "error"):
                outputs.append({"type": kind, **content})
                text = content.get("text") or content.get("data", {}).get("text/plain", "")
                if interrupt_after and interrupt_after in text:
                    self.manager.interrupt_kernel()
                    interrupt_after = None
        return self.client.get_shell_msg(timeout=timeout)["content"], outputs

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    # this venv's python3 kernelspec before any user-level one: JUPYTER_PATH is searched first
    monkeypatch.setenv("JUPYTER_PATH", str(Path(sys.prefix) / "share" / "jupyter"))
    started = Kernel(tmp_path)
    yield started
    started.close()


def text_of(outputs: list[dict], name: str) -> str:
    return "".join(output["text"] for output in outputs if output["type"] == "stream" and output["name"] == name)


SETUP = """
import torch, trainlab as tl
torch.set_num_threads(1)
config = tl.TrainConfig(device="cpu", threads=1, data_dir={data!r}, log_every=1, {changes})
"""


def test_the_kernel_runs_this_venvs_python(kernel):
    reply, outputs = kernel.run("import sys; print(sys.executable)")
    assert reply["status"] == "ok"
    assert text_of(outputs, "stdout").strip() == sys.executable


def test_fit_in_a_kernel_shows_a_bar_per_epoch_the_epoch_table_and_the_learning_curve(kernel, tiny_data):
    reply, outputs = kernel.run(SETUP.format(data=str(tiny_data), changes="epochs=2") + "s = tl.fit(config)")
    assert reply["status"] == "ok", outputs
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widgets) == 2  # tqdm.auto's notebook bar, one per epoch
    tables = [o for o in outputs if "<th>test accuracy</th>" in o.get("data", {}).get("text/html", "")]
    assert [o["type"] for o in tables] == ["display_data", "update_display_data"]
    assert tables[0]["transient"]["display_id"] == tables[1]["transient"]["display_id"]
    assert tables[-1]["data"]["text/html"].count("<tr>") == 3  # the header and both epochs, updated in place
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2  # the curve: shown, then redrawn
    stdout = text_of(outputs, "stdout")
    assert stdout.startswith("Training on cpu (1 CPU threads): 640 training and 160 test images; run directory runs/")
    assert "Done: test accuracy " in stdout and "after 2 epochs; checkpoint runs/" in stdout
    reply, outputs = kernel.run("s2 = tl.fit(config, progress=False)")
    assert reply["status"] == "ok" and outputs == []


def test_interrupting_the_kernel_during_fit_saves_the_checkpoint_says_how_to_resume_and_returns(kernel, tiny_data):
    # epochs enough that the interrupt lands while it trains: one epoch is ~0.1 s, the whole run minutes; it is
    # sent once the epoch table is first shown (after epoch 1), so that steps were taken whatever the machine's load
    code = SETUP.format(data=str(tiny_data), changes="epochs=2000") + "s = tl.fit(config, run_dir='runs/stopped')"
    reply, outputs = kernel.run(code, timeout=120, interrupt_after="test accuracy")
    assert reply["status"] == "ok", outputs  # fit returned: no KeyboardInterrupt, no traceback
    assert not [o for o in outputs if o["type"] == "error"]
    (line,) = text_of(outputs, "stderr").splitlines()[-1:]
    assert line.startswith("Interrupted (SIGINT): checkpoint saved at step ")
    assert line.endswith(
        "; resume with fit(..., run_dir='runs/stopped', resume=True) with the same arguments, or: "
        "trainlab train --resume runs/stopped"
    )
    reply, outputs = kernel.run(
        "print(s['status'], s['steps'] > 0, tl.load_checkpoint(s['checkpoint']).payload['step'] == s['steps'])"
    )
    assert text_of(outputs, "stdout") == "interrupted True True\n"
