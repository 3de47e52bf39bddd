"""The review's findings as one ranked list of suspects: label issues, duplicates, blank and unreadable images."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from trainlab.data import ImageData
from trainlab.data.relabel import DROP, image_names
from trainlab.reviewing.duplicates import Pair, blank_rows
from trainlab.reviewing.scores import LabelScores

# kinds of finding; an image with several is shown as the first of them
KINDS = ("unreadable", "blank", "exact duplicate", "label", "near duplicate")
RANK_GROUP = {"unreadable": 0, "blank": 0, "exact duplicate": 0, "label": 1, "near duplicate": 2}


@dataclass
class Suspect:
    """One image the review asks the user to look at, and what it suggests (a class, `drop`, or "": keep)."""

    file: str
    split: str
    given: str
    suggested: str
    confidence: float  # 0..1: how sure the review is that something is wrong
    reason: str
    kind: str
    row: int = -1  # its row in the split as loaded (-1: unreadable, not loaded)
    reasons: list[str] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON and CSV fields."""
        return {
            "file": self.file,
            "split": self.split,
            "given": self.given,
            "suggested": self.suggested,
            "confidence": round(self.confidence, 4),
            "reason": self.reason,
            "kind": self.kind,
        }


class Findings:
    """Suspects by (split, row), one per image: a second finding about an image joins the first."""

    def __init__(self, splits: dict[str, ImageData]):
        self.splits = splits
        self.names = {split: image_names(data, split) for split, data in splits.items()}
        self.found: dict[tuple[str, Any], Suspect] = {}

    def given(self, split: str, row: int) -> str:
        data = self.splits[split]
        return data.classes[int(data.labels[row])]

    def add(self, split: str, row: int, kind: str, suggested: str, confidence: float, reason: str) -> None:
        """Record a finding; with an earlier one, `drop` wins the suggestion and the higher confidence stays."""
        key = (split, row)
        suspect = self.found.get(key)
        if suspect is None:
            name = self.names[split][row]
            self.found[key] = Suspect(name, split, self.given(split, row), suggested, confidence, reason, kind, row)
            return
        suspect.reason += f"; {reason}"
        if suggested == DROP or (suggested and not suspect.suggested):
            suspect.suggested = suggested
        suspect.confidence = max(suspect.confidence, confidence)
        suspect.kind = min(suspect.kind, kind, key=KINDS.index)

    def add_labels(self, split: str, scores: LabelScores) -> None:
        """Confident learning's label issues of one split."""
        classes = self.splits[split].classes
        for row in torch.nonzero(scores.issue).flatten().tolist():
            suggested = classes[int(scores.suggested[row])]
            reason = (
                f"label: the model gives {self.given(split, row)} {scores.given_probability[row]:.0%} and "
                f"{suggested} {scores.suggested_probability[row]:.0%}"
            )
            self.add(split, row, "label", suggested, float(scores.confidence[row]), reason)

    def add_pairs(self, pairs: list[Pair]) -> None:
        """Duplicates: an exact copy is suggested for `drop`, a near one is left to the user."""
        for pair in pairs:
            of = f"{self.names[pair.of.split][pair.of.row]} ({pair.of.split}, {self.given(pair.of.split, pair.of.row)})"
            leak = " - a test image that is also in the training set" if pair.copy.split != pair.of.split else ""
            if pair.exact:
                reason, kind, suggested = f"exact duplicate of {of}{leak}", "exact duplicate", DROP
            else:
                reason, kind, suggested = (
                    f"near duplicate of {of}, cosine {pair.similarity:.3f}{leak}",
                    "near duplicate",
                    "",
                )
            self.add(pair.copy.split, pair.copy.row, kind, suggested, pair.similarity, reason)

    def add_blanks(self, split: str, images: torch.Tensor) -> None:
        for row in blank_rows(images):
            value = int(images[row].flatten()[0])
            self.add(split, row, "blank", DROP, 1.0, f"blank: every pixel is {value}")

    def add_unreadable(self, split: str, files: list[str]) -> None:
        """Files of the data set that could not be decoded (left out with --skip-bad-images)."""
        for file in files:
            self.found[(split, file)] = Suspect(
                file, split, "", DROP, 1.0, "unreadable: left out of training", "unreadable"
            )

    def ranked(self) -> list[Suspect]:
        """Every suspect: what the pixels prove (unreadable, blank, exact copies), then label issues, then near
        duplicates, each surest first."""
        return sorted(
            self.found.values(),
            key=lambda s: (RANK_GROUP[s.kind], -s.confidence, s.split != "train", s.row, s.file),
        )
