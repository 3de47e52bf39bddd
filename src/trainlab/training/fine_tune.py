"""--fine-tune, as fastai's `fine_tune`: the first --freeze-epochs epochs train the classifier head alone with the
body frozen; then every layer trains, at half the learning rate, earlier layers slower (discriminative learning
rates: the body's top-level children from lr / 100 up to the head's lr, spread geometrically).

Each phase has its own optimizer and its own lr schedule over its own steps (the configured schedule, as fastai
runs one cycle per phase). The optimizer and schedule a run holds are always those of the phase of the epoch it
is in (the next epoch once one has ended), so every checkpoint holds the phase its epoch resumes in. A frozen body
runs in eval mode (batch norm on its running statistics, no dropout); without augmentation its features are
computed once (feature_cache.py), which also serves a linear probe: --freeze of every layer but the head.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainlab.config import TrainConfig, read_config_file
from trainlab.data.memory import ImageData
from trainlab.engine.reporting import Reporter
from trainlab.errors import ConfigError
from trainlab.layout import CONFIG_FILE
from trainlab.models.pretrained import classifier_head
from trainlab.training.feature_cache import FeatureCache, as_features
from trainlab.training.optimizers import make_optimizer
from trainlab.training.schedules import LinearDecay, make_scheduler

FROZEN, UNFROZEN = 1, 2  # the phases: the head alone, then every layer
LR_MULT = 100  # fastai's lr_mult: the first layers train at lr / 100 of the head's in the unfrozen phase
UNFROZEN_LR_SHARE = 0.5  # fastai halves base_lr before it unfreezes
FROM_SCRATCH_NOTE = (
    "--fine-tune without --weights or --init-from: the body its first phase freezes is randomly initialised, so "
    "that phase trains a head on random features; start from trained weights, or leave out --fine-tune"
)


def resolved(
    config: TrainConfig, init_from: Any = None, resumed: Path | None = None, several_processes: bool = False
) -> TrainConfig:
    """config with fine_tune decided: as given, else on when the run starts from trained weights (--weights or
    --init-from) in one process, off otherwise (DDP fixes the parameters it trains when it wraps the model); the
    resolved value is what the run records, and what a `resumed` run (its directory) continues with."""
    if config.fine_tune is not None:
        return config
    if resumed is not None and (resumed / CONFIG_FILE).is_file():
        return config.replace(fine_tune=bool(read_config_file(resumed / CONFIG_FILE).get("fine_tune", False)))
    return config.replace(fine_tune=bool(config.weights or init_from) and not several_processes)


def recipe_choices(config: TrainConfig, kept: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """--preset auto: (key, value, reason) of fine-tuning when the run starts from trained weights."""
    if not config.fine_tune or "fine_tune" in kept:
        return []
    epochs = config.freeze_epochs
    return [
        (
            "fine_tune",
            True,
            f"the run starts from trained weights (--init-from or --weights): the first {epochs} epoch"
            f"{'s' if epochs != 1 else ''} train the new head alone on the frozen body, then every layer at half "
            f"the lr, the first layers at 1/{LR_MULT} of the head's (fastai's fine_tune); --no-fine-tune trains "
            "all layers alike",
        )
    ]


def head_and_body(model: nn.Module) -> tuple[str, nn.Module, list[nn.Module]]:
    """The classifier head's name and module, and the modules of the body (neither the head, inside it, nor
    holding it)."""
    name, head = classifier_head(model)
    body = [
        module
        for inner, module in model.named_modules()
        if inner and inner != name and not inner.startswith(name + ".") and not name.startswith(inner + ".")
    ]
    return name, head, body


def body_groups(model: nn.Module, head: str) -> list[list[nn.Parameter]]:
    """The body's parameters in layer groups, earliest first: the children of the first module (from the model
    down) that splits the body in two or more, after the tensors that modules on the way hold themselves."""

    def outside_head(prefix: str, module: nn.Module) -> list[nn.Parameter]:
        return [p for n, p in module.named_parameters(prefix=prefix) if n != head and not n.startswith(head + ".")]

    prefix, module, loose = "", model, []
    while True:
        loose += list(module.parameters(recurse=False))  # e.g. a vision transformer's class token: an early layer
        children = [(f"{prefix}{n}", c) for n, c in module.named_children()]
        groups = [(n, c, outside_head(n, c)) for n, c in children]
        groups = [(n, c, params) for n, c, params in groups if params]
        if len(groups) != 1 or not list(groups[0][1].children()):
            return [group for group in (loose, *(params for _, _, params in groups)) if group]
        prefix, module = groups[0][0] + ".", groups[0][1]


def layer_lrs(lr: float, groups: int) -> list[float]:
    """`groups` body lrs, earliest first, geometrically from lr / LR_MULT towards lr (the head's), as fastai's
    slice(lr / LR_MULT, lr) spreads them."""
    return [lr / LR_MULT * LR_MULT ** (index / groups) for index in range(groups)]


class PhaseLinearDecay(LinearDecay):
    """The linear schedule of one phase, counted from the phase's first step (`start`, a global step); a time
    budget's re-plan moves the end of the unfrozen phase only (the frozen phase ends where --freeze-epochs does)."""

    def __init__(self, total_steps: int, warmup_steps: int, start: int, movable: bool):
        super().__init__(total_steps, warmup_steps)
        self.start, self.movable = start, movable

    def replan(self, step: int, total_steps: int) -> None:
        if self.movable:
            super().replan(step - self.start, total_steps - self.start)


class FrozenBodyModel(nn.Module):
    """The model as the head alone trains it: train() leaves the frozen body in eval mode."""

    def __init__(self, forward_model: nn.Module, body: list[nn.Module]):
        super().__init__()
        self.forward_model = forward_model
        self.body = tuple(body)  # a tuple: not registered again as submodules

    def train(self, mode: bool = True) -> FrozenBodyModel:
        super().train(mode)
        for module in self.body:
            module.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_model(images)


class FineTuning:
    """A run's frozen body and, with --fine-tune, its phases: which parameters train, with which optimizer and
    schedule, on cached features or through the model. A run with neither is left as it is."""

    def __init__(self, setup: Any, reporter: Reporter):
        self.setup, self.reporter = setup, reporter
        self.phased = bool(setup.config.fine_tune)
        self.phase: int | None = None
        self.cache: FeatureCache | None = None
        self.head_lrs: tuple[float, float] = (setup.config.lr, setup.config.lr)  # the head's, the first layers'
        if self.phased and setup.dist.active:  # DDP fixes the parameters it syncs when it wraps the model
            raise ConfigError("--fine-tune trains in one process; leave out --nproc (or torchrun), or --no-fine-tune")
        self.head_name, self.head, self.body = head_and_body(setup.model) if self.phased else probe_parts(setup)
        self.enter(0)

    @property
    def frozen_body(self) -> bool:
        """Whether the body is frozen now: the first phase of --fine-tune, or --freeze of all but the head."""
        return self.phase == FROZEN or (not self.phased and self.head is not None)

    def enter(self, epoch: int) -> None:
        """Make the phase of `epoch` (0-based) the run's: its trainable parameters, optimizer and schedule. A run
        that has ended stays in its last epoch's phase (its checkpoint keeps the optimizer that trained)."""
        if not self.phased:
            return
        last = min(epoch, self.setup.epochs - 1)
        phase = FROZEN if last < self.setup.config.freeze_epochs else UNFROZEN
        if phase == self.phase:
            return
        self.phase, self.cache = phase, None
        kept_frozen = tuple(self.setup.config.freeze)  # the user's --freeze holds in both phases
        for name, parameter in self.setup.model.named_parameters():
            trains = phase == UNFROZEN or name.startswith(self.head_name + ".")
            parameter.requires_grad_(trains and not name.startswith(kept_frozen))
        self.setup.optimizer = self.optimizer(phase)
        self.setup.scheduler = self.schedule(phase)

    def restored(self, epoch: int) -> None:
        """A checkpoint's weights are back: its epoch's phase, its features computed again."""
        self.cache = None
        self.enter(epoch)

    def optimizer(self, phase: int) -> torch.optim.Optimizer:
        """The phase's optimizer: the head alone at lr, or the head at half the lr (its group first: the lr each
        epoch reports) and the body's layer groups at discriminative lrs."""
        config, model = self.setup.config, self.setup.model
        head = [p for p in self.head.parameters() if p.requires_grad]
        groups = [(head, config.lr)]
        if phase == UNFROZEN:
            lr = config.lr * UNFROZEN_LR_SHARE
            layers = [[p for p in group if p.requires_grad] for group in body_groups(model, self.head_name)]
            layers = [group for group in layers if group]
            groups = [(head, lr), *zip(layers, layer_lrs(lr, len(layers)), strict=True)]
            self.head_lrs = (lr, groups[1][1] if layers else lr)
        optimizer = make_optimizer(config.replace(lr=groups[0][1]), groups[0][0])
        for parameters, lr in groups[1:]:
            optimizer.add_param_group({"params": parameters, "lr": lr})
        return optimizer

    def schedule(self, phase: int) -> Any:
        """The configured schedule over the phase's own steps (its warm-up at most half of them), or None."""
        setup = self.setup
        config, per_epoch = setup.config, setup.steps_per_epoch
        if config.schedule == "none" and not config.warmup_epochs:
            return None
        frozen_steps = min(config.freeze_epochs * per_epoch, setup.total_steps)
        start, end = (0, frozen_steps) if phase == FROZEN else (frozen_steps, setup.total_steps)
        steps = max(end - start, 1)
        warmup = min(int(round(config.warmup_epochs * per_epoch)), steps // 2)
        optimizer = setup.optimizer
        if config.schedule == "linear":
            decay = PhaseLinearDecay(steps, warmup, start, movable=phase == UNFROZEN)
            return torch.optim.lr_scheduler.LambdaLR(optimizer, decay)
        lrs = [group["lr"] for group in optimizer.param_groups]
        every = config.step_epochs * per_epoch
        return make_scheduler(config.schedule, optimizer, lrs, steps, warmup, every, config.step_gamma)

    def train_steps(self, epoch: int, start_batch: int, after_step: Any, **loop: Any) -> dict[str, float]:
        """Train the batches of `epoch` from `start_batch` on: the head on cached features, the head through the
        frozen body (in eval mode), or the whole model."""
        setup = self.setup
        cache = self.feature_cache() if self.frozen_body else None
        self.say_phase(epoch, cached=cache is not None)
        if cache is not None:
            batches = cache.batches(epoch, start_batch)
            return setup.train_steps(batches, after_step, model=self.head, preprocess=as_features, **loop)
        model = FrozenBodyModel(setup.forward_model, self.body) if self.frozen_body else None
        return setup.train_steps(setup.batches(epoch, start_batch), after_step, model=model, **loop)

    def evaluation(self, data: ImageData) -> tuple[nn.Module, ImageData, Any]:
        """(model, data, preprocessing) that evaluate `data`: the head on cached features of a validation or
        test split while the body is frozen, else the run's evaluation model on the images."""
        setup = self.setup
        split = data is setup.val_data or data is setup.test_data
        cache = self.feature_cache() if self.frozen_body and split else None
        features = cache.of(data) if cache is not None else None
        if features is None:
            return setup.eval_model, data, setup.preprocess
        return self.head, features, as_features

    def feature_cache(self) -> FeatureCache | None:
        """The frozen body's feature cache, made (and said) on first use; None where images change every epoch
        (augmentation, flip TTA), under several processes, or for a model whose head cannot be cached."""
        setup = self.setup
        if setup.augment is not None or setup.config.tta != "none" or setup.dist.active:
            return None
        if self.cache is None:
            self.cache = FeatureCache(setup, self.head)
            if self.cache.of(setup.train_data) is None:
                self.reporter.message(
                    f"frozen body: its features cannot be cached ({self.head_name}'s input does not decide the "
                    "model's output); each epoch runs the whole model"
                )
        return self.cache if self.cache.usable else None

    def say_phase(self, epoch: int, cached: bool) -> None:
        """The epoch's phase, said before it trains."""
        if not self.phased:
            return
        config = self.setup.config
        if self.phase == FROZEN:
            where = "on its features, computed once" if cached else "through it in eval mode"
            self.reporter.message(
                f"fine-tune phase 1 of 2 (epoch {epoch + 1} of the first {config.freeze_epochs}): the head "
                f"{self.head_name} alone, the body frozen, {where}; lr {config.lr:.3g}"
            )
            return
        head, first = self.head_lrs
        self.reporter.message(
            f"fine-tune phase 2 of 2 (epoch {epoch + 1}): every layer; lr {head:.3g} for the head down to "
            f"{first:.3g} for the first layers"
        )

    def budgeted(self, steps: int) -> int:
        """The steps of the epoch just ended that a time budget's re-plan costs: none for a frozen phase, far
        cheaper than the phase that follows (its steps would make the machine look faster than it is)."""
        return 0 if self.phased and self.phase == FROZEN else steps


def probe_parts(setup: Any) -> tuple[str | None, nn.Module | None, list[nn.Module]]:
    """A run without --fine-tune whose --freeze leaves the head alone trainable (a linear probe): its head's name,
    module and body; else (None, None, [])."""
    if not setup.config.freeze:
        return None, None, []
    try:
        name, head, body = head_and_body(setup.model)
    except ConfigError:
        return None, None, []
    inside = name + "."
    parameters = list(setup.model.named_parameters())
    body_frozen = all(not p.requires_grad for n, p in parameters if not n.startswith(inside))
    if body_frozen and any(p.requires_grad for p in head.parameters()):
        return name, head, body
    return None, None, []
