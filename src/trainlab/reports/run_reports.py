"""The PNG reports every run gets: learning curves, test confusion matrix, most confidently wrong images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from trainlab.layout import CONFUSION_FILE, CURVES_FILE, TOP_LOSSES_FILE  # noqa: F401 - re-exported
from trainlab.reports.classification import confusion_matrix
from trainlab.reports.plots import confusion_matrix_plot, learning_curves, top_losses_plot


def most_confidently_wrong(
    predictions: torch.Tensor, confidences: torch.Tensor, labels: torch.Tensor, count: int
) -> torch.Tensor:
    """Indices of the wrong predictions with the highest confidence, most confident first."""
    wrong = (predictions != labels.cpu()).nonzero().view(-1)
    order = confidences[wrong].argsort(descending=True)
    return wrong[order[:count]]


def write_run_reports(analysis: dict[str, Any], top_count: int = 16) -> list[Path]:
    """Draw the run's PNG reports into its run directory; returns their paths."""
    run_dir = Path(analysis["run_dir"])
    classes = tuple(analysis["classes"])
    labels = analysis["test_labels"].cpu()
    predictions, confidences = analysis["predictions"], analysis["confidences"]
    paths = [learning_curves({run_dir.name: analysis["metrics"]}, run_dir / CURVES_FILE)]
    paths.append(
        confusion_matrix_plot(confusion_matrix(predictions, labels, len(classes)), classes, run_dir / CONFUSION_FILE)
    )
    index = most_confidently_wrong(predictions, confidences, labels, top_count)
    paths.append(
        top_losses_plot(
            analysis["test_images"][index.to(analysis["test_images"].device)].cpu(),
            [classes[int(predictions[i])] for i in index],
            [classes[int(labels[i])] for i in index],
            [float(confidences[i]) for i in index],
            run_dir / TOP_LOSSES_FILE,
        )
    )
    return paths
