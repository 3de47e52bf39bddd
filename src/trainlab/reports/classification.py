"""Classification figures from predictions: confusion matrix and per-class precision/recall/accuracy."""

from __future__ import annotations

import torch


def confusion_matrix(predicted: torch.Tensor, actual: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts (num_classes, num_classes): row = true class, column = predicted class."""
    index = actual.long().cpu() * num_classes + predicted.long().cpu()
    return torch.bincount(index, minlength=num_classes * num_classes).view(num_classes, num_classes)


def per_class_report(matrix: torch.Tensor, classes: tuple[str, ...]) -> list[dict]:
    """Precision, recall and support per class (recall is the class's accuracy)."""
    rows = []
    for i, name in enumerate(classes):
        true_positive = int(matrix[i, i])
        support = int(matrix[i].sum())
        predicted = int(matrix[:, i].sum())
        rows.append(
            {
                "class": name,
                "precision": true_positive / predicted if predicted else 0.0,
                "recall": true_positive / support if support else 0.0,
                "support": support,
            }
        )
    return rows


SHOWN_CLASSES = 50  # more classes than this: the table shows those with the lowest recall


def format_per_class(rows: list[dict], limit: int = SHOWN_CLASSES) -> str:
    """A text table of per_class_report rows; past `limit` classes, only the `limit` with the lowest recall."""
    shown = rows if len(rows) <= limit else sorted(rows, key=lambda r: (r["recall"], r["class"]))[:limit]
    width = max(len("class"), *(len(r["class"]) for r in shown))
    lines = [f"{'class':<{width}}  precision  recall  support"]
    lines += [f"{r['class']:<{width}}  {r['precision']:9.3f}  {r['recall']:6.3f}  {r['support']:7d}" for r in shown]
    if len(shown) < len(rows):
        lines.append(f"({limit} of {len(rows)} classes shown: those with the lowest recall; --json lists them all)")
    return "\n".join(lines)
