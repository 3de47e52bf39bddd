"""Everything a run trains with, assembled from a config and data: model, loss, optimizer, schedule, loader.

build_training is shared by the Trainer and the lr range test, so both train exactly the same way.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from trainlab.checkpoint import load_checkpoint
from trainlab.config import FILE_DATASETS, TrainConfig, limited_batches
from trainlab.data import DatasetSplits, make_loader
from trainlab.data.augment import Augmentation
from trainlab.data.input_styles import measure_look
from trainlab.data.memory import BatchLoader, ImageData, channel_stats, stratified_split
from trainlab.data.split_advice import separate_test_hint, single_source, too_small, working_val_split
from trainlab.data.transforms import Preprocessing
from trainlab.data.weights_input import weights_input, with_weights_input
from trainlab.engine import distributed
from trainlab.engine.distributed import Distributed
from trainlab.engine.loop import StepHook, autocast_for, train_one_epoch
from trainlab.engine.losses import LossFn, make_loss
from trainlab.engine.reporting import Reporter
from trainlab.engine.runtime import keep_freed_memory, resolve_device, resolve_precision
from trainlab.errors import ConfigError, DataError
from trainlab.model_names import is_weights_name
from trainlab.models import create_model, freeze_parameters
from trainlab.models.pretrained import load_named_weights
from trainlab.models.tta import with_tta
from trainlab.training.optimizers import make_optimizer
from trainlab.training.schedules import make_scheduler


@dataclass
class TrainingSetup:
    """The objects one run trains with, on its device."""

    config: TrainConfig
    device: torch.device
    classes: tuple[str, ...]
    train_data: ImageData
    val_data: ImageData | None
    test_data: ImageData
    data_fingerprint: dict[str, Any]
    preprocess: Preprocessing
    augment: Augmentation | None
    model: nn.Module
    forward_model: nn.Module  # the model, its torch.compile wrapper, and its DDP wrapper with several processes
    eval_model: nn.Module  # what evaluates: the model or its compiled wrapper, never DDP (no gradients to sync)
    loss_fn: LossFn
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler | None
    autocast: Callable[[], Any]
    loader: BatchLoader
    dist: Distributed

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps in one epoch: the loader's batches, or --limit-train-batches of them."""
        return limited_batches(self.config.limit_train_batches, len(self.loader))

    @property
    def total_steps(self) -> int:
        """Optimizer steps in the whole run: every epoch's, or --max-steps of them."""
        return total_steps(self.config, self.steps_per_epoch)

    @property
    def epochs(self) -> int:
        """Epochs the run trains, the last one partial when --max-steps ends it mid-epoch."""
        return -(-self.total_steps // self.steps_per_epoch)

    def steps_in_epoch(self, epoch: int) -> int:
        """Optimizer steps of `epoch` (0-based): a whole epoch's, or what --max-steps leaves of the last."""
        return max(0, min(self.steps_per_epoch, self.total_steps - epoch * self.steps_per_epoch))

    def batches(self, epoch: int, start_batch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of `epoch` from `start_batch` on, augmented on the device when asked."""
        remaining = itertools.islice(self.loader.batches(epoch, start_batch), self.steps_in_epoch(epoch) - start_batch)
        for images, labels in remaining:
            if self.augment is not None:
                images = self.augment(images)
            if self.config.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            yield images, labels

    def train_steps(
        self,
        batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
        after_step: StepHook | None = None,
        model: nn.Module | None = None,
        preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
        **loop: Any,
    ) -> dict[str, float]:
        """train_one_epoch over `batches` with this setup's model, loss, optimizer, precision and clipping (the
        run, the budget's timing, the recipe's flip test and the lr range test all train this one way); `model`
        and `preprocess` replace the setup's where a frozen body is left out (training/fine_tune.py)."""
        return train_one_epoch(
            self.forward_model if model is None else model,
            batches,
            self.loss_fn,
            self.optimizer,
            self.preprocess if preprocess is None else preprocess,
            autocast=self.autocast,
            scaler=self.scaler,
            grad_clip=self.config.grad_clip,
            after_step=after_step,
            **loop,
        )


def model_arguments(config: TrainConfig) -> dict[str, Any]:
    """Keyword arguments for create_model."""
    arguments = dict(config.extra)
    if config.dropout:
        arguments["dropout"] = config.dropout
    return arguments


def load_pretrained(model: nn.Module, path: str, model_name: str | None = None) -> str:
    """--weights: torchvision's weights named `path` for tv:NAME `model_name` from torch's cache, or the tensors of
    a local weights file (read weights-only, as any checkpoint is) that fit a tv:NAME model; returns what was
    taken, for the user."""
    if model_name is not None and is_weights_name(path):
        return load_named_weights(model, model_name, path)
    model.load_pretrained(load_checkpoint(path).model_state, path)
    return model.pretrained_note


def build_training(
    config: TrainConfig,
    data: DatasetSplits,
    model: nn.Module | None = None,
    reporter: Reporter | None = None,
    pretrained: bool = True,
) -> TrainingSetup:
    """Split, check and move the data, seed, and build the model, loss, optimizer, schedule, scaler and loader.

    Under torchrun each process takes its shard of every global batch and trains a DDP copy of the model.
    """
    dist = distributed.current()
    device = training_device(config, dist)
    fingerprint = data_fingerprint(config, data)
    train, val = data.train, None
    if config.val_split:
        train, val = stratified_split(train, config.val_split, config.seed)
    check_splits(config, data, train, val)
    channels, height, width = train.image_shape
    mean, std = channel_stats(train) if config.normalize else (None, None)
    preprocess = Preprocessing(channels, height, width, mean, std, look=measure_look(train.images))
    pretrained_input = weights_input(config.model, config.weights)  # named weights: their mean, std and resize
    preprocess = with_weights_input(preprocess, pretrained_input, decoded=config.dataset in FILE_DATASETS)
    augment = (
        Augmentation(config.augment_padding, config.augment_flip, config.augment_erasing) if config.augment else None
    )
    model = seeded_model(config, model, train.image_shape, len(data.classes), device, dist, reporter, pretrained)
    train_data = train.to(device)
    optimizer = make_optimizer(config, model.parameters())
    batch_size = config.per_process_batch_size(dist.world)
    loader = make_loader(train_data, batch_size, config.shuffle, config.seed, (dist.rank, dist.world))
    steps_per_epoch = limited_batches(config.limit_train_batches, len(loader))
    scheduler = scheduler_for(config, optimizer, steps_per_epoch=steps_per_epoch)
    forward_model, eval_model = forward_and_eval_models(config, model, device, dist)
    precision, why = resolve_precision(config.precision, device)
    if config.precision == "auto" and reporter is not None:
        reporter.message(f"precision auto: {precision} ({why})")
    return TrainingSetup(
        config=config,
        device=device,
        classes=data.classes,
        train_data=train_data,
        val_data=val.to(device) if val is not None else None,
        test_data=data.test.to(device),
        data_fingerprint=fingerprint,
        preprocess=preprocess,
        augment=augment,
        model=model,
        forward_model=forward_model,
        eval_model=eval_model,
        loss_fn=make_loss(config.loss, len(data.classes), config.label_smoothing),
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=torch.amp.GradScaler(device.type) if precision == "fp16" else None,
        autocast=autocast_for(device, precision),
        loader=loader,
        dist=dist,
    )


def training_device(config: TrainConfig, dist: Distributed) -> torch.device:
    """The device this process trains on (its own GPU under torchrun), with torch's threads and memory set up."""
    device = resolve_device(config.device)
    if dist.active and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    if config.threads:
        torch.set_num_threads(config.threads)
    if device.type == "cpu":
        keep_freed_memory()
    return device


def seeded_model(
    config: TrainConfig,
    model: nn.Module | None,
    image_shape: tuple[int, int, int],
    num_classes: int,
    device: torch.device,
    dist: Distributed,
    reporter: Reporter | None,
    pretrained: bool,
) -> nn.Module:
    """Seed every generator and build the model (prepared_model's), with SyncBatchNorm where asked."""
    torch.manual_seed(config.seed)  # model init matches `torch.manual_seed(seed); NeuralNetwork()`
    random.seed(config.seed)
    np.random.seed(config.seed)
    model = prepared_model(config, model, image_shape, num_classes, device, reporter, pretrained)
    if dist.active:  # the same weights everywhere (DDP also broadcasts rank 0's), a random stream of each its own
        torch.manual_seed(config.seed + 1_000_003 * dist.rank)
        if config.sync_batchnorm:
            if device.type != "cuda":
                raise ConfigError(
                    "--sync-batchnorm needs CUDA processes (torch's SyncBatchNorm runs on GPUs only); on CPU "
                    "leave it out: each process then normalizes with its own share of the batch"
                )
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def forward_and_eval_models(
    config: TrainConfig, model: nn.Module, device: torch.device, dist: Distributed
) -> tuple[nn.Module, nn.Module]:
    """The model training steps call (DDP, compiled) and the one evaluation calls (compiled, with TTA)."""
    forward_model = distributed_model(model, device, dist)  # torch.compile goes outside DDP, as torch advises
    eval_model = model if dist.active else forward_model
    if config.compile:
        forward_model = torch.compile(forward_model)
        eval_model = forward_model if not dist.active else torch.compile(model)
    eval_model = with_tta(eval_model, config.tta)  # validation and test passes as predict and the server see it
    return forward_model, eval_model


def distributed_model(model: nn.Module, device: torch.device, dist: Distributed) -> nn.Module:
    """The model as DDP wraps it when there are several processes (one device per process), else itself."""
    if not dist.active:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def prepared_model(
    config: TrainConfig,
    model: nn.Module | None,
    image_shape: tuple[int, int, int],
    num_classes: int,
    device: torch.device,
    reporter: Reporter | None,
    pretrained: bool,
) -> nn.Module:
    """The given model or config.model's, with config.freeze applied, on `device` in its memory format."""
    if model is None:
        model = create_model(config.model, image_shape, num_classes, **model_arguments(config))
        if config.weights and pretrained:  # a resume restores every weight from its checkpoint instead
            note = load_pretrained(model, config.weights, config.model)
            if reporter is not None:
                reporter.message(note)
    if config.freeze:
        freeze_parameters(model, config.freeze)
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def total_steps(config: TrainConfig, steps_per_epoch: int) -> int:
    """Optimizer steps of a whole run: epochs x steps per epoch, or --max-steps when fewer."""
    every_epoch = config.epochs * steps_per_epoch
    return every_epoch if config.max_steps is None else min(every_epoch, config.max_steps)


def scheduler_for(config: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
    """config's lr schedule over the whole run in optimizer steps, or None for a constant lr."""
    if config.schedule == "none" and not config.warmup_epochs:
        return None
    return make_scheduler(
        config.schedule,
        optimizer,
        config.lr,
        total_steps(config, steps_per_epoch),
        int(round(config.warmup_epochs * steps_per_epoch)),
        config.step_epochs * steps_per_epoch,
        config.step_gamma,
    )


def check_splits(config: TrainConfig, data: DatasetSplits, train, val) -> None:
    """Every split has images, and all of them have the training images' shape and classes: checked before step 1."""
    if val is not None and len(data.train) + len(data.test) > 0:
        check_val_split(config, data, train, val)
    if len(data.train) == 0:
        raise DataError(f"the training set of {describe_data(config)} holds no images; check the data files")
    if len(data.train.classes) < 2:  # it would "learn" 100% accuracy and predict that class for everything
        raise DataError(
            f"{describe_data(config)} holds one class ({', '.join(data.train.classes)}); a classifier needs two or "
            "more: add a class folder (or CSV label) for each other kind of image"
        )
    if len(data.test) == 0:
        raise DataError(f"the test set of {describe_data(config)} holds no images; check the data files")
    shape = "x".join(map(str, data.train.image_shape))
    for name, split in (("test", data.test), ("validation", val)):
        if split is None:
            continue
        if split.image_shape != data.train.image_shape:
            raise DataError(
                f"the {name} images of {describe_data(config)} are {'x'.join(map(str, split.image_shape))} "
                f"(channels x height x width) but the training images are {shape}; both must match"
            )
        if tuple(split.classes) != tuple(data.train.classes):
            raise DataError(
                f"the {name} set of {describe_data(config)} has {len(split.classes)} classes but the "
                f"training set has {len(data.train.classes)} ({', '.join(data.train.classes[:5])}, ...); "
                "both must have the same classes"
            )


def check_val_split(config: TrainConfig, data: DatasetSplits, train: ImageData, val: ImageData) -> None:
    """--val-split leaves images in every split it makes, else one line naming a value that does or why none can."""
    fraction = config.val_split
    if single_source(config):  # a single CSV or tree: the test part is held out first, then validation
        sizes = [a + b for a, b in itertools.zip_longest(class_sizes(data.train), class_sizes(data.test), fillvalue=0)]
        if len(train) and len(val) and len(data.test):
            return
        value = working_val_split(sizes, holds_out_test=True)
        advice = (
            f"use --val-split {value:g}"
            if value is not None
            else f"its images are {too_small(sizes, holds_out_test=True)}: give {separate_test_hint(config)}, or "
            "more images"
        )
        raise DataError(
            f"--val-split {fraction:g} on {describe_data(config)}, the only source of images, leaves {len(train)} "
            f"for training, {len(val)} for validation and {len(data.test)} for testing; {advice}"
        )
    if len(train) and len(val):
        return
    sizes = class_sizes(data.train)
    value = working_val_split(sizes, holds_out_test=False)
    if len(val) == 0:
        problem = f"--val-split {fraction:g} holds out none of the {len(data.train)} training images"
        advice = f"raise it to {value:g}, or leave it out" if value is not None else "leave it out"
    else:
        problem = f"--val-split {fraction:g} leaves none of the {len(data.train)} images for training"
        advice = f"lower it to {value:g}" if value is not None else "leave it out"
    if value is None:
        raise DataError(f"{problem}, and they are {too_small(sizes, holds_out_test=False)}: {advice}")
    raise DataError(f"{problem}; {advice}")


def class_sizes(data: ImageData) -> list[int]:
    """Images per class, in class order."""
    return torch.bincount(data.labels.cpu(), minlength=len(data.classes)).tolist()


def describe_data(config: TrainConfig) -> str:
    """The data a config names, for messages: '--dataset fashion-mnist in /data' or the CSV/folder."""
    where = config.annotations or config.image_dir or config.data_dir or "the default data directory"
    return f"--dataset {config.dataset} ({where})"


def data_fingerprint(config: TrainConfig, data: DatasetSplits) -> dict[str, Any]:
    """What identifies the data a run trains on: counts, image shape, classes and a digest of every label."""
    digest = hashlib.sha256()
    for split in (data.train, data.test):
        digest.update(split.labels.cpu().to(torch.int64).numpy().tobytes())
    return {
        "dataset": config.dataset,
        "train_images": len(data.train),
        "test_images": len(data.test),
        "image_shape": list(data.train.image_shape),
        "classes": list(data.classes),
        "labels_sha256": digest.hexdigest(),
    }
