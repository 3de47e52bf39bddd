"""What a study searches: the base config, the search space, the metric and the pruner; fixed at the study's
first start and recorded in STUDY_DIR/study.toml, so that a rerun with other settings is refused."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainlab.config import TrainConfig, read_config_file
from trainlab.errors import ConfigError, TrainlabError
from trainlab.fileio import write_bytes_atomically
from trainlab.tuning.search import Dimension, ModelTrust, check_named_models, parse_search

STUDY_FILE = "study.toml"
METRICS = ("val_accuracy", "val_loss")
PRUNERS = ("median", "hyperband", "none")


def direction_of(metric: str) -> str:
    return "minimize" if metric.endswith("_loss") else "maximize"


@dataclass
class StudySpec:
    """What a study searches: fixed at its first start and recorded in study.toml."""

    base: TrainConfig
    search: list[Dimension]
    metric: str = "val_accuracy"
    pruner: str = "median"

    def check(self) -> None:
        if self.metric not in METRICS:
            raise ConfigError(f"unknown --metric {self.metric!r}; choose one of: {', '.join(METRICS)}")
        if self.pruner not in PRUNERS:
            raise ConfigError(f"unknown --pruner {self.pruner!r}; choose one of: {', '.join(PRUNERS)}")
        if not self.base.val_split:
            raise ConfigError(
                f"trainlab tune chooses by {self.metric} on a validation split, never the test set; "
                "add --val-split 0.1 (or val_split in the config)"
            )

    def to_dict(self) -> dict[str, Any]:
        config = {key: value for key, value in self.base.to_dict().items() if value is not None and value != {}}
        return {
            "metric": self.metric,
            "pruner": self.pruner,
            "search": [dimension.spec() for dimension in self.search],
            "config": config,
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str) -> StudySpec:
        try:
            base = TrainConfig.from_dict(values["config"], source=source)
            return cls(base, parse_search(values["search"], base, source), values["metric"], values["pruner"])
        except (KeyError, TypeError) as exc:
            raise TrainlabError(f"{source}: not a trainlab study file ({exc}); choose another --run-dir") from None


def open_study_spec(study_dir: Path, spec: StudySpec | None, trust: ModelTrust) -> StudySpec:
    """The study's spec: recorded in study.toml at its first start; a rerun with other settings is refused."""
    path = study_dir / STUDY_FILE
    if path.is_file():
        recorded = StudySpec.from_dict(read_config_file(path), str(path))
        check_named_models(recorded.base, recorded.search, str(path), trust)  # an edited file runs no code
        if spec is not None and spec.to_dict() != recorded.to_dict():
            changed = [key for key, value in spec.to_dict().items() if recorded.to_dict()[key] != value]
            raise ConfigError(
                f"{study_dir} holds a study with other settings ({', '.join(changed)} differ from {path}); "
                "rerun it with its own flags (or just --run-dir), or choose another --run-dir"
            )
        return recorded
    if spec is None:
        raise ConfigError(f"{study_dir} holds no study ({STUDY_FILE} missing); give --search to start one there")
    import tomli_w

    study_dir.mkdir(parents=True, exist_ok=True)
    write_bytes_atomically(path, tomli_w.dumps(spec.to_dict()).encode())
    return spec
