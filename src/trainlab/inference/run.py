"""Run: a read-only view of a run directory that shows itself in a notebook; RunSummary: what trainlab.fit returns.

A Run reads the files a run writes (config.toml, metrics.jsonl, summary.json, checkpoints, report PNGs) and
nothing else. Its repr and HTML never import torch: the report PNGs are embedded as they are, and a run with no
learning-curve PNG yet gets one drawn small with matplotlib from metrics.jsonl. Only .predictor() loads torch.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainlab.config_file import read_config_file
from trainlab.errors import TrainlabError
from trainlab.figures import png_img
from trainlab.fileio import open_regular, read_json_object
from trainlab.layout import (
    BEST_CHECKPOINT,
    CONFIG_FILE,
    CONFUSION_FILE,
    CURVES_FILE,
    LAST_CHECKPOINT,
    SUMMARY_FILE,
    TOP_LOSSES_FILE,
)
from trainlab.reports.plots import PNG_SIGNATURE, figure_png, learning_curves_figure
from trainlab.reports.runs import read_metrics

if TYPE_CHECKING:
    from trainlab.inference.predictor import Predictor

# the settings a reader looks for first; the rest of config.toml is one click away in the HTML
MAIN_SETTINGS = ("dataset", "model", "optimizer", "lr", "batch_size", "epochs", "schedule", "seed", "device")
REPORTS = {"learning_curves": CURVES_FILE, "confusion_matrix": CONFUSION_FILE, "top_losses": TOP_LOSSES_FILE}
MAX_SHOWN_PNG = 20 * 1024 * 1024  # bytes: a report PNG larger than this is named, not embedded
SMALL_CURVES_INCHES = (7.0, 2.6)  # the curves drawn for a run that has no learning_curves.png yet


class Run:
    """A finished or stopped run directory, read-only: its config, figures per epoch, summary, checkpoints and
    report PNGs; shown in a notebook with its curves and confusion matrix."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not (self.path / CONFIG_FILE).is_file():
            raise TrainlabError(
                f"{self.path}: not a trainlab run directory (no {CONFIG_FILE}); give the folder fit or "
                "`trainlab train` wrote (--run-dir)"
            )

    @property
    def config(self) -> dict[str, Any]:
        """The run's settings as config.toml records them (plain values)."""
        return read_config_file(self.path / CONFIG_FILE)

    @property
    def metrics(self) -> list[dict[str, Any]]:
        """One dict per finished epoch (epoch, train_loss, test_accuracy, lr, ...), as metrics.jsonl holds them."""
        return read_metrics(self.path)

    @property
    def summary(self) -> dict[str, Any]:
        """The run's summary.json (what fit returned); {} while the run has not ended."""
        return read_json_object(self.path / SUMMARY_FILE) or {}

    @property
    def status(self) -> str:
        """finished, stopped early, ... as the summary says; 'stopped' for a run that never wrote one."""
        return str(self.summary.get("status", "stopped"))

    @property
    def checkpoints(self) -> dict[str, Path]:
        """The checkpoints on disk: {'last': path, 'best': path}, each only when present."""
        found = {"last": self.path / LAST_CHECKPOINT, "best": self.path / BEST_CHECKPOINT}
        return {name: path for name, path in found.items() if path.is_file()}

    @property
    def reports(self) -> dict[str, Path]:
        """The report PNGs on disk: learning_curves, confusion_matrix, top_losses, each only when present."""
        found = {name: self.path / file for name, file in REPORTS.items()}
        return {name: path for name, path in found.items() if path.is_file()}

    def predictor(self, **options: Any) -> Predictor:
        """A Predictor from the run's kept checkpoint (best.pt, else last.pt); options as Predictor.from_checkpoint."""
        # torch is imported here, when a model is asked for, not when the run is looked at
        from trainlab.inference.predictor import Predictor

        return Predictor.from_checkpoint(self.path, **options)

    def __repr__(self) -> str:
        try:
            config, metrics, summary = self.config, self.metrics, self.summary
        except TrainlabError as exc:  # a repr that raised would leave a notebook a traceback instead
            return f"Run({str(self.path)!r}: damaged: {' '.join(str(exc).split())})"
        parts = [f"{config.get('model', 'mlp')} on {config.get('dataset', 'fashion-mnist')}"]
        parts.append(f"{self.status}, {len(metrics)}/{config.get('epochs', 10)} epochs")
        accuracy = summary.get("test_accuracy", metrics[-1].get("test_accuracy") if metrics else None)
        if accuracy is not None:
            parts.append(f"test accuracy {100 * accuracy:.1f}%")
        return f"Run({str(self.path)!r}: {', '.join(parts)})"

    def _repr_html_(self) -> str:
        try:
            config, metrics = self.config, self.metrics
        except TrainlabError:
            return f"<b>{html.escape(repr(self))}</b>"
        sections = [f"<b>{html.escape(repr(self))}</b>", figures_table(self.summary, metrics)]
        sections.append(settings_table(config))
        curves = self.png(self.reports.get("learning_curves"))
        if curves is None and metrics:
            curves = figure_png(learning_curves_figure({self.path.name: metrics}, SMALL_CURVES_INCHES), dpi=72)
        confusion = self.png(self.reports.get("confusion_matrix"))
        sections.append(
            "<div>" + png_tag(curves, "learning curves") + png_tag(confusion, "confusion matrix") + "</div>"
        )
        files = {**{f"{k} checkpoint": v for k, v in self.checkpoints.items()}, **self.reports}
        sections.append(
            "<div style='font-size:smaller'>"
            + "<br>".join(f"{html.escape(name)}: <code>{html.escape(str(path))}</code>" for name, path in files.items())
            + "</div>"
        )
        return "<div class='trainlab-run'>" + "".join(sections) + "</div>"

    @staticmethod
    def png(path: Path | None) -> bytes | None:
        """A report PNG's bytes when it is a regular PNG file of a size worth embedding, else None."""
        if path is None:
            return None
        try:
            with open_regular(path) as handle:
                data = handle.read(MAX_SHOWN_PNG + 1)
        except OSError:
            return None
        return data if data.startswith(PNG_SIGNATURE) and len(data) <= MAX_SHOWN_PNG else None


class RunSummary(dict):
    """The summary dict trainlab.fit returns (summary["test_accuracy"], ...); `.run` is its Run, which a
    notebook shows in its place."""

    @property
    def run(self) -> Run:
        """The run directory this summary describes, as a Run."""
        return Run(self["run_dir"])

    def _repr_html_(self) -> str:
        return self.run._repr_html_()


def png_tag(png: bytes | None, title: str) -> str:
    """An <img> embedding the PNG, side by side with another, or nothing."""
    return "" if png is None else png_img(png, title, "max-width:48%;vertical-align:top;margin:4px")


def html_table(rows: list[tuple[str, Any]]) -> str:
    """A two-column HTML table of names and values, escaped."""
    cells = "".join(
        f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows
    )
    return f"<table>{cells}</table>"


def figures_table(summary: dict[str, Any], metrics: list[dict[str, Any]]) -> str:
    """The final figures: test accuracy and loss, best validation accuracy, steps, machine time."""
    final = metrics[-1] if metrics else {}
    shown = []
    for name, key, form in (
        ("test accuracy", "test_accuracy", "{:.2%}"),
        ("test loss", "test_loss", "{:.4f}"),
        ("train loss", "train_loss", "{:.4f}"),
        ("best val accuracy", "best_val_accuracy", "{:.2%}"),
        ("best epoch", "best_epoch", "{}"),
        ("steps", "steps", "{:,}"),
    ):
        value = summary.get(key, final.get(key))
        if value is not None:
            shown.append((name, form.format(value)))
    seconds = summary.get("machine_seconds", sum(row.get("machine_seconds", 0.0) for row in metrics))
    shown.append(("training time", f"{seconds:.1f} s"))
    return html_table(shown)


def settings_table(config: dict[str, Any]) -> str:
    """The main settings as a table, and every other one of config.toml under a click."""
    main = [(key, config[key]) for key in MAIN_SETTINGS if key in config]
    rest = [(key, value) for key, value in config.items() if key not in MAIN_SETTINGS]
    return html_table(main) + f"<details><summary>all {len(config)} settings</summary>{html_table(rest)}</details>"
