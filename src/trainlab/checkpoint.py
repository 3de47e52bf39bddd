"""The one checkpoint format: self-describing, written atomically, loaded with weights_only=True.

A trainlab checkpoint is a dict of plain types and tensors: format="trainlab-checkpoint", format_version,
and the fields of TrainingState below (its one definition).
Plain state_dict files (the tutorial's `torch.save(model.state_dict(), "model.pth")`) and
safetensors files are read too; a whole pickled model only with trust_pickle=True. trainlab's own
state_dict and safetensors exports describe their model (name, classes, preprocessing) in metadata
that other code ignores: the state_dict's `_metadata[""]["trainlab"]` and the safetensors header.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainlab.checkpoint_records import check_preprocessing, check_unlike
from trainlab.config import TTA_CHOICES
from trainlab.errors import CheckpointError, FileWriteError
from trainlab.fileio import NotRegularFile, atomic_write, looks_like_safetensors, looks_like_torch_file, open_regular
from trainlab.layout import BEST_CHECKPOINT, LAST_CHECKPOINT
from trainlab.models.tta import FlipAveraged

FORMAT = "trainlab-checkpoint"
FORMAT_VERSION = 1
WRAPPER_PREFIXES = ("_orig_mod.", "module.")  # torch.compile and DDP
EXPORT_METADATA_KEY = "trainlab"  # JSON: model, extra, classes, preprocessing of an exported weights file
KIND_NAMES = {  # what messages call each kind of file
    "trainlab": "a trainlab checkpoint",
    "state_dict": "a plain state_dict",
    "safetensors": "a safetensors file",
    "pickled_model": "a pickled whole model (torch.save(model))",
}


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside DDP / torch.compile / test-time augmentation wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, FlipAveraged):
            model = model.model
        elif isinstance(model, nn.parallel.DistributedDataParallel) or type(model).__name__ == "DataParallel":
            model = model.module
        else:
            return model


def clean_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys without wrapper prefixes, so files load into a plain model."""
    cleaned = {}
    for key, value in state.items():
        for prefix in WRAPPER_PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix) :]
        cleaned[key] = value
    return cleaned


def model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights with clean keys, ready to save."""
    return clean_state_dict(unwrap_model(model).state_dict())


RESUME_FIELDS = ("model_state", "optimizer_state", "epoch", "step", "epoch_progress", "rng", "metrics")


@dataclass
class TrainingState:
    """Everything a training checkpoint holds, as plain types and tensors: what rebuilds the model and resumes."""

    config: dict[str, Any]  # TrainConfig.to_dict()
    classes: list[str]
    preprocessing: dict[str, Any]  # Preprocessing.to_dict()
    model_state: dict[str, torch.Tensor]  # clean keys (no DDP / torch.compile prefixes)
    optimizer_state: dict[str, Any]
    epoch: int  # epochs finished
    step: int  # optimizer steps taken
    epoch_progress: dict[str, Any]  # where in the current epoch (EpochProgress)
    rng: dict[str, Any]  # python, numpy, torch (and CUDA) generator states
    metrics: list[dict[str, Any]]  # one row per finished epoch
    scaler_state: dict[str, Any] | None = None  # fp16 grad scaler
    scheduler_state: dict[str, Any] | None = None
    data: dict[str, Any] | None = None  # the data's fingerprint, checked on resume

    def to_payload(self) -> dict[str, Any]:
        """The dict torch.save writes (shallow: tensors are not copied)."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            **{item.name: getattr(self, item.name) for item in fields(self)},
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any], path: str | os.PathLike) -> TrainingState:
        """The state in a loaded trainlab checkpoint; one that lacks what a resume needs is refused by name."""
        if not payload:
            raise CheckpointError(f"{path}: not a trainlab training checkpoint; cannot resume from it")
        missing = [name for name in RESUME_FIELDS if name not in payload]
        if missing:
            raise CheckpointError(f"{path}: incomplete training checkpoint (no {', '.join(missing)}); cannot resume")
        return cls(**{item.name: payload.get(item.name) for item in fields(cls)})


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write payload to path atomically; on failure the previous file at path is left intact."""
    try:
        return atomic_write(path, lambda handle: torch.save(payload, handle))
    except FileWriteError as exc:
        raise CheckpointError(
            f"cannot write checkpoint {path}: {exc.reason}; the previous checkpoint is intact"
        ) from None


@dataclass
class LoadedCheckpoint:
    """What a checkpoint file holds, whatever its kind."""

    path: Path
    kind: str  # "trainlab", "state_dict", "safetensors" or "pickled_model"
    model_state: dict[str, torch.Tensor]
    payload: dict[str, Any] = field(default_factory=dict)  # the whole trainlab checkpoint
    description: dict[str, Any] = field(default_factory=dict)  # an export's metadata: model, classes, preprocessing

    @property
    def info(self) -> dict[str, Any]:
        return self.payload or self.description

    @property
    def config(self) -> dict[str, Any] | None:
        return self.info.get("config")

    @property
    def classes(self) -> tuple[str, ...] | None:
        classes = self.info.get("classes")
        return tuple(classes) if classes is not None else None

    @property
    def preprocessing(self) -> dict[str, Any] | None:
        return self.info.get("preprocessing")

    @property
    def kind_name(self) -> str:
        """What the file is, in words: "a plain state_dict", "a pickled whole model (torch.save(model))", ..."""
        return KIND_NAMES[self.kind]


def export_description(
    model_name: str,
    extra: dict[str, Any],
    classes: tuple[str, ...],
    preprocessing: dict[str, Any],
    tta: str = "none",
) -> str:
    """The JSON an exported weights file carries so that trainlab can rebuild its model (and how it predicts)."""
    config = {"model": model_name, "extra": extra, "tta": tta}
    return json.dumps({"config": config, "classes": list(classes), "preprocessing": preprocessing})


def read_description(text: Any, path: Path) -> dict[str, Any]:
    """An export's description, checked to hold plain values of the expected kinds ({} when absent)."""
    if text is None:
        return {}
    try:
        values = json.loads(text)
        config, classes, preprocessing = values["config"], values["classes"], values["preprocessing"]
        if not (
            isinstance(config, dict)
            and isinstance(config.get("model"), str)
            and isinstance(config.get("extra", {}), dict)
            and config.get("tta", "none") in TTA_CHOICES
            and isinstance(preprocessing, dict)
            and isinstance(classes, list)
            and classes
            and all(isinstance(c, str) for c in classes)
        ):
            raise ValueError("unexpected value types")
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"{path}: its trainlab metadata is damaged ({exc}); pass --model and use a trainlab checkpoint"
        ) from None
    check_preprocessing(preprocessing, path)
    return {
        "config": {"model": config["model"], "extra": config.get("extra", {}), "tta": config.get("tta", "none")},
        "classes": classes,
        "preprocessing": preprocessing,
    }


def resolve_checkpoint_path(path: str | os.PathLike) -> Path:
    """A run directory means its best checkpoint if it has one, else its last."""
    path = Path(path)
    if path.is_dir():
        for name in (BEST_CHECKPOINT, LAST_CHECKPOINT):
            candidate = path / name
            if candidate.exists():  # not only a regular file: a FIFO there is refused by name when opened
                return candidate
        raise CheckpointError(f"{path}: run directory has no checkpoints/last.pt; did its training save anything?")
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file or run directory")
    return path


def load_checkpoint(
    path: str | os.PathLike, trust_pickle: bool = False, map_location: str = "cpu", unlike_record: bool = True
) -> LoadedCheckpoint:
    """Read any checkpoint kind safely; a pickled whole model needs trust_pickle=True; unlike_record=False leaves
    a trainlab checkpoint's unlike record unchecked (`trainlab calibrate` replaces it)."""
    path = resolve_checkpoint_path(path)
    with _open_checkpoint(path) as handle:  # every read goes through this one handle of a regular file
        head = handle.read(16)
        handle.seek(0)
        if path.suffix == ".safetensors" or looks_like_safetensors(head):
            return _load_safetensors(path, handle.read())
        if not head:
            raise CheckpointError(f"{path}: file is empty; not a checkpoint")
        if not looks_like_torch_file(head):
            raise CheckpointError(f"{path}: not a checkpoint (neither a PyTorch file nor safetensors)")
        return _load_torch_file(path, handle, trust_pickle, map_location, unlike_record)


def _load_torch_file(
    path: Path, handle: Any, trust_pickle: bool, map_location: str, unlike_record: bool = True
) -> LoadedCheckpoint:
    """A torch.save file, read weights-only (a pickled model only when trusted); errors name the file."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")  # torch's note on plain pickles
            obj = torch.load(handle, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if trust_pickle:
            handle.seek(0)
            return _load_pickled_model(path, handle, map_location)
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if found is None:
            raise CheckpointError(f"{path}: not a checkpoint or corrupt ({_unpickling_problem(exc)})") from None
        raise CheckpointError(
            f"{path}: holds pickled Python objects ({found.group(1)}), such as a whole model saved with "
            "torch.save(model); loading it could run arbitrary code, so it was refused. If you trust its source, "
            "pass --trust-pickle"
        ) from None
    except Exception as exc:  # torch raises RuntimeError/EOFError/ValueError for non-checkpoint files
        raise CheckpointError(f"{path}: not a checkpoint or corrupt ({_first_line(exc)})") from None
    return _classify(path, obj, unlike_record)


def _open_checkpoint(path: Path) -> Any:
    """The checkpoint file opened for reading; a FIFO, device or socket is refused by name, never waited on."""
    try:
        return open_regular(path)
    except NotRegularFile as exc:
        raise CheckpointError(f"{path}: {exc.strerror}; give a checkpoint file or a run directory") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def _unpickling_problem(exc: BaseException) -> str:
    """The useful part of torch's long weights-only error, e.g. 'Unsupported operand 149'."""
    text = str(exc)
    marker = "WeightsUnpickler error:"
    if marker in text:
        rest = [line.strip() for line in text.split(marker, 1)[1].splitlines() if line.strip()]
        if rest:
            return rest[0]
    return _first_line(exc)


def _classify(path: Path, obj: Any, unlike_record: bool = True) -> LoadedCheckpoint:
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        version = obj.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise CheckpointError(
                f"{path}: checkpoint format version {version!r} is newer than this trainlab understands "
                f"({FORMAT_VERSION}); upgrade trainlab"
            )
        state = obj.get("model_state")
        if not _is_tensor_table(state):
            what = "it has none" if state is None else "it is not a table of tensors"
            raise CheckpointError(
                f"{path}: a trainlab checkpoint without its model weights (model_state: {what}); the file is "
                "damaged: use another checkpoint (the run's checkpoints/best.pt or last.pt)"
            )
        check_preprocessing(obj.get("preprocessing"), path)
        if unlike_record:
            check_unlike(obj.get("unlike"), path)
        return LoadedCheckpoint(path, "trainlab", state, obj)
    if _is_tensor_table(obj):
        root = (getattr(obj, "_metadata", None) or {}).get("", {})
        description = read_description(root.get(EXPORT_METADATA_KEY) if isinstance(root, dict) else None, path)
        return LoadedCheckpoint(path, "state_dict", clean_state_dict(obj), description=description)
    raise CheckpointError(f"{path}: not a checkpoint (expected a trainlab checkpoint or a state_dict of tensors)")


def _is_tensor_table(obj: Any) -> bool:
    """A non-empty dict of name -> tensor: a state_dict."""
    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _load_safetensors(path: Path, content: bytes) -> LoadedCheckpoint:
    """A safetensors file's tensors and trainlab description, from its bytes (read from the checked handle)."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        state = load(content)
        size = int.from_bytes(content[:8], "little")
        metadata = json.loads(content[8 : 8 + size]).get("__metadata__") or {}
        if not isinstance(metadata, dict):
            raise ValueError("its __metadata__ is not a table")
    except (SafetensorError, OSError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path}: not a valid safetensors file ({_first_line(exc)})") from None
    description = read_description(metadata.get(EXPORT_METADATA_KEY), path)
    return LoadedCheckpoint(path, "safetensors", clean_state_dict(state), description=description)


def _load_pickled_model(path: Path, handle: Any, map_location: str) -> LoadedCheckpoint:
    warnings.warn(f"{path}: loading a pickled model with --trust-pickle runs code from the file", stacklevel=4)
    try:
        obj = torch.load(handle, map_location=map_location, weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot be loaded even as a pickle ({_first_line(exc)})") from None
    if isinstance(obj, nn.Module):
        return LoadedCheckpoint(path, "pickled_model", model_state(obj))
    return _classify(path, obj)


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> str:
    """Load weights strictly; a mismatch names the missing, unexpected and mis-shaped keys."""
    target = unwrap_model(model)
    expected = target.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    if missing or unexpected or misshaped:
        parts = []
        if missing:
            parts.append(f"missing keys: {_short_list(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_short_list(unexpected)}")
        if misshaped:
            parts.append(f"mis-shaped: {_short_list(misshaped)}")
        if misshaped and not (missing or unexpected):
            raise CheckpointError(
                f"{source} has this model's layers but other sizes ({'; '.join(parts)}): it was trained for "
                "another number of classes or image size; use its trainlab checkpoint or an export made by trainlab, "
                "which record them"
            )
        raise CheckpointError(
            f"{source} does not fit this model ({'; '.join(parts)}); is it from another model? try --model"
        )
    result = target.load_state_dict(state, strict=True)
    return str(result)


def _short_list(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _first_line(exc: BaseException) -> str:
    """The first sentence of an exception's message (torch's run on for paragraphs)."""
    text = str(exc).strip().splitlines()
    return text[0].split(". ")[0] if text else type(exc).__name__
