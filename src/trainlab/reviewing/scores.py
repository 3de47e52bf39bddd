"""Confident learning (Northcutt et al., cleanlab): which given labels out-of-sample probabilities disagree with.

Each class j has a threshold t_j, the mean probability of class j over the images labelled j (the model's
self-confidence for that class). An image labelled i is a label issue when p_i < t_i and some other class k has
p_k >= t_k, or is more probable than i; its suggested class is the most probable of those above their threshold
(else the most probable other class). Issues are ranked by self-confidence, p_given, cleanlab's default
label-quality score: the lower, the likelier the label is wrong. (On 5,000 Fashion-MNIST images with 5% of
the labels flipped, the first 5% by self-confidence held 77% of the flips, by the normalized margin
(p_given - max p_other + 1) / 2 only 64%: an MLP's confident mistakes on hard images have large margins too.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LabelScores:
    """Per image: whether its label is an issue, the suggested class, and how sure the review is (0..1)."""

    issue: torch.Tensor  # bool (N,)
    suggested: torch.Tensor  # int64 (N,)
    confidence: torch.Tensor  # float (N,): 1 - p_given, the review's certainty that the label is wrong
    given_probability: torch.Tensor  # float (N,)
    suggested_probability: torch.Tensor  # float (N,)


def class_thresholds(probabilities: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """t_j: the mean probability of class j over the images labelled j (a class nobody carries: 1, never reached)."""
    classes = probabilities.shape[1]
    sums = torch.zeros(classes, dtype=probabilities.dtype).index_add_(
        0, labels, probabilities[torch.arange(len(labels)), labels]
    )
    counts = torch.bincount(labels, minlength=classes).to(probabilities.dtype)
    return torch.where(counts > 0, sums / counts.clamp(min=1), torch.ones_like(sums))


def label_scores(probabilities: torch.Tensor, labels: torch.Tensor) -> LabelScores:
    """Confident learning's label issues, suggestions and ranking score for (N, K) probabilities and N labels."""
    probabilities, labels = probabilities.float().cpu(), labels.long().cpu()
    rows = torch.arange(len(labels))
    thresholds = class_thresholds(probabilities, labels)
    given = probabilities[rows, labels]
    others = probabilities.clone()
    others[rows, labels] = -1.0  # the given class is never its own suggestion
    above = others >= thresholds
    # another class above its threshold (confident learning), or simply the most probable (cleanlab's
    # predicted_neq_given): a 94% answer just under a 96% threshold is still a confident disagreement
    disagrees = above.any(dim=1) | (others.max(dim=1).values > given)
    issue = (given < thresholds[labels]) & disagrees
    # the suggestion: the most probable class above its threshold, else the most probable other class
    suggested = torch.where(above.any(dim=1), torch.where(above, others, -1.0).argmax(dim=1), others.argmax(dim=1))
    return LabelScores(issue, suggested, 1.0 - given, given, probabilities[rows, suggested])
