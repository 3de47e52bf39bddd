"""How a study chooses its trials' values and stops the poor ones early: the per-trial seeded TPE sampler and
the pruner a study names."""

from __future__ import annotations

from typing import Any

from trainlab.tuning.spec import StudySpec


def pruner_for(name: str, spec: StudySpec) -> Any:
    import optuna

    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "hyperband":
        epochs = [spec.base.epochs] + [d.high for d in spec.search if d.key == "epochs" and d.high is not None]
        epochs += [max(d.choices) for d in spec.search if d.key == "epochs" and d.choices]
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=int(max(epochs)))
    return optuna.pruners.MedianPruner()


class TrialSeededSampler:
    """Optuna's TPE sampler, seeded afresh for each trial from the seed and the trial's number: a study run by
    one process draws the same points every time, a rerun draws new ones, and processes sharing a study never
    draw the same point for their trials (one seed per process would give each process the same points)."""

    def __init__(self, seed: int):
        import optuna

        self.seed = seed
        self.sampler = optuna.samplers.TPESampler(seed=seed)

    def before_trial(self, study: Any, trial: Any) -> None:
        import optuna

        self.sampler = optuna.samplers.TPESampler(seed=self.seed + trial.number)
        self.sampler.before_trial(study, trial)

    def infer_relative_search_space(self, study: Any, trial: Any) -> Any:
        return self.sampler.infer_relative_search_space(study, trial)

    def sample_relative(self, study: Any, trial: Any, search_space: Any) -> Any:
        return self.sampler.sample_relative(study, trial, search_space)

    def sample_independent(self, study: Any, trial: Any, name: str, distribution: Any) -> Any:
        return self.sampler.sample_independent(study, trial, name, distribution)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        self.sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.sampler.reseed_rng()
