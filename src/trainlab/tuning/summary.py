"""What a study has found: the table of its trials, best.toml (the best trial's config) and Optuna's plots."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

from trainlab.fileio import write_bytes_atomically
from trainlab.layout import CONFIG_FILE
from trainlab.tuning.spec import StudySpec

BEST_CONFIG_FILE = "best.toml"
HISTORY_PLOT = "optimization_history.png"
IMPORTANCE_PLOT = "param_importances.png"


def shown_value(value: Any) -> str:
    """A parameter's value as the table and the trial lines show it."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def shown_score(value: float, metric: str) -> str:
    """A metric's value as the table and the trial lines show it: accuracies in percent."""
    return f"{100 * value:.2f}%" if metric.endswith("accuracy") else f"{value:.4f}"


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """One row per trial: number, state, params, value, epochs, seconds, run directory."""
    return [
        {
            "number": trial.number,
            "state": trial.state.name.lower(),
            "params": dict(trial.params),
            "value": trial.value,
            "epochs": trial.user_attrs.get("epochs"),
            "seconds": trial.user_attrs.get("seconds"),
            "run_dir": trial.user_attrs.get("run_dir"),
            "error": trial.user_attrs.get("error"),
        }
        for trial in study.get_trials(deepcopy=False)
    ]


def format_table(rows: list[dict[str, Any]], metric: str, best: int | None) -> str:
    """The trials as an aligned text table, the best one marked."""
    keys = sorted({key for row in rows for key in row["params"]})
    header = ["#", "state", *keys, metric, "epochs", "seconds"]
    lines = [header]
    for row in rows:
        value = row["value"]
        shown = "-" if value is None else shown_score(value, metric)
        lines.append(
            [
                f"{row['number']}{'*' if row['number'] == best else ''}",
                row["state"],
                *(shown_value(row["params"][key]) if key in row["params"] else "-" for key in keys),
                shown,
                "-" if row["epochs"] is None else str(row["epochs"]),
                "-" if row["seconds"] is None else f"{row['seconds']:.1f}",
            ]
        )
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def study_summary(study: Any, spec: StudySpec, study_dir: Path, say: Any) -> dict[str, Any]:
    """The table, best.toml and the plots; returns what --json prints."""
    rows = trial_rows(study)
    try:
        best = study.best_trial
    except ValueError:  # no trial completed
        best = None
    say(format_table(rows, spec.metric, best.number if best else None))
    result: dict[str, Any] = {
        "study": study.study_name,
        "study_dir": str(study_dir),
        "metric": spec.metric,
        "trials": rows,
        "pruned": sum(row["state"] == "pruned" for row in rows),
        "best": None,
        "best_config": None,
        "plots": [],
    }
    if best is None:
        say("No trial has finished yet; nothing is best")
        return result
    best_config = study_dir / BEST_CONFIG_FILE
    source = Path(best.user_attrs["run_dir"]) / CONFIG_FILE
    write_bytes_atomically(best_config, source.read_bytes())
    result["best"] = {
        "number": best.number,
        "value": best.value,
        "params": best.params,
        "run_dir": best.user_attrs.get("run_dir"),
        "test_accuracy": best.user_attrs.get("test_accuracy"),
    }
    result["best_config"] = str(best_config)
    result["plots"] = [str(path) for path in study_plots(study, study_dir, say)]
    say(f"Best: trial {best.number}, {spec.metric} {best.value:.4f} ({best.user_attrs.get('run_dir')})")
    say(f"Train it again with: trainlab train --config {best_config}")
    return result


def study_plots(study: Any, study_dir: Path, say: Any) -> list[Path]:
    """Optuna's own optimization-history and parameter-importance plots, as PNGs (matplotlib backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as optuna_plots

    paths = []
    completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    plots = [(HISTORY_PLOT, optuna_plots.plot_optimization_history)]
    if len(completed) >= 2 and study.trials[0].params:
        plots.append((IMPORTANCE_PLOT, optuna_plots.plot_param_importances))
    for name, draw in plots:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            try:
                axes = draw(study)
            except (ValueError, RuntimeError) as exc:  # e.g. importances of a space with one value tried
                say(f"{name} not drawn: {exc}")
                continue
        figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
        figure.set_size_inches(8, 5)
        figure.tight_layout()
        path = study_dir / name
        content = io.BytesIO()
        figure.savefig(content, format="png", dpi=100)
        plt.close(figure)
        write_bytes_atomically(path, content.getvalue())
        paths.append(path)
    return paths
