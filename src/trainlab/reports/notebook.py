"""The notebook reporter: in a Jupyter kernel `fit` shows a progress bar per epoch (tqdm.auto: a widget where
ipywidgets is installed), a table of every epoch's figures (the console's) and a small learning curve, the table
and the curve redrawn in place through IPython display handles.

Nothing here imports IPython: a kernel has imported it long before `fit` runs, and a script never pays for it.
"""

from __future__ import annotations

import html
import sys
from typing import Any

from trainlab.engine.reporting import Reporter

# (key of a metrics row, column title, how it is shown); a column appears once a row holds its key
COLUMNS = (
    ("epoch", "epoch", "{:d}"),
    ("train_loss", "train loss", "{:.4f}"),
    ("val_loss", "val loss", "{:.4f}"),
    ("val_accuracy", "val accuracy", "{:.1%}"),
    ("test_loss", "test loss", "{:.4f}"),
    ("test_accuracy", "test accuracy", "{:.1%}"),
    ("lr", "lr", "{:.3g}"),
    ("machine_samples_per_second", "images/s", "{:,.0f}"),
    ("machine_seconds", "seconds", "{:.1f}"),
)
CURVE_SIZE = (8.0, 2.8)  # inches: two small panels, loss and accuracy


def in_jupyter_kernel() -> bool:
    """Whether this code runs in a Jupyter kernel (a notebook, JupyterLab, VS Code), not a terminal or a script."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    if shell is None:
        return False
    return type(shell).__name__ == "ZMQInteractiveShell" or "IPKernelApp" in getattr(shell, "config", {})


class EpochTable:
    """The figures of every epoch so far, shown as an HTML table in a notebook and as text elsewhere."""

    def __init__(self, rows: list[dict[str, Any]]):
        self.rows = rows

    def columns(self) -> list[tuple[str, str, str]]:
        return [column for column in COLUMNS if any(column[0] in row for row in self.rows)]

    def cells(self, row: dict[str, Any]) -> list[str]:
        return [form.format(row[key]) if row.get(key) is not None else "" for key, _, form in self.columns()]

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(title)}</th>" for _, title, _ in self.columns())
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in self.cells(row)) + "</tr>" for row in self.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __repr__(self) -> str:
        lines = [[title for _, title, _ in self.columns()], *(self.cells(row) for row in self.rows)]
        widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
        return "\n".join(
            "  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)) for line in lines
        )


class NotebookReporter(Reporter):
    """What a notebook user sees while `fit` runs: bars, the epoch table, the learning curve and the messages."""

    def __init__(self, curve: bool = True):
        self.curve = curve
        self.rows: list[dict[str, Any]] = []
        self._bar = None
        self._table = None  # IPython display handles, made at the first epoch's end
        self._plot = None

    def start(self, info: dict[str, Any]) -> None:
        print(
            f"Training on {info['device']} ({info['threads']} CPU threads): {info['train_samples']:,} training "
            f"and {info['test_samples']:,} test images; run directory {info['run_dir']}",
            flush=True,
        )

    def epoch_start(self, epoch: int, batches: int, start_batch: int) -> None:
        from tqdm.auto import tqdm

        self._close_bar()
        self._bar = tqdm(total=batches, initial=start_batch, desc=f"Epoch {epoch}", unit="batch", leave=False)

    def step(self, loss: float, batch_size: int) -> None:
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix_str(f"loss={loss:.4f}", refresh=False)

    def epoch_end(self, row: dict[str, Any]) -> None:
        self._close_bar()
        self.rows.append(row)
        self._table = shown(EpochTable(self.rows), self._table)
        if self.curve:
            self._plot = shown(self.curve_picture(), self._plot)

    def curve_picture(self) -> Any:
        """The learning curve of the epochs so far, as an IPython PNG image."""
        from IPython.display import Image

        from trainlab.reports.plots import figure_png, learning_curves_figure

        return Image(data=figure_png(learning_curves_figure({"run": self.rows}, size=CURVE_SIZE), dpi=72))

    def end(self, summary: dict[str, Any], analysis: dict[str, Any]) -> None:
        self._close_bar()
        best = ""
        if summary.get("best_epoch"):
            best = f"; best epoch {summary['best_epoch']} ({summary['best_val_accuracy']:.1%} validation accuracy)"
        figures = ""
        if summary.get("test_accuracy") is not None:
            figures = f"test accuracy {summary['test_accuracy']:.1%}, loss {summary['test_loss']:.4f} after "
        print(f"Done: {figures}{summary['epochs']} epochs{best}; checkpoint {summary['checkpoint']}", flush=True)

    def message(self, text: str) -> None:
        print(text, flush=True)

    def abort(self, error: BaseException) -> None:
        self._close_bar()

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def shown(picture: Any, handle: Any) -> Any:
    """Show `picture` in the notebook: in place of what `handle` shows, or as a new output; returns its handle."""
    from IPython.display import display

    if handle is None:
        return display(picture, display_id=True)
    handle.update(picture)
    return handle
