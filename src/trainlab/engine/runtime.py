"""The process a run trains in: its device, random generators and memory settings."""

from __future__ import annotations

import ctypes
import ctypes.util
import random
import sys
from typing import Any

import numpy as np
import torch

from trainlab.errors import ConfigError

M_TRIM_THRESHOLD = -1  # glibc mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
KEEP_BYTES = 1 << 30  # 1 GiB
TRIM_BYTES = (1 << 31) - 1  # 2 GiB, the largest value mallopt's C int takes


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed blocks instead of unmapping them after every step.

    By default every activation larger than 128 KiB is mmapped and unmapped again at each step, and
    the page faults on the fresh pages cost 5-10% of a CPU epoch (measured: about 150,000 minor faults
    per 40 steps of the speedrun cnn, none after this call). Returns False where there is no glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_BYTES))


CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # CPUs that compute bf16 natively; others emulate it


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux); empty where they cannot be read."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def resolve_precision(name: str, device: torch.device) -> tuple[str, str]:
    """(precision, why): `auto` becomes bf16 where the device runs it fast, else fp32; others stay as asked."""
    if name != "auto":
        return name, "asked for"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", f"{torch.cuda.get_device_name(device)} computes bf16 natively"
        return "fp32", f"{torch.cuda.get_device_name(device)} has no native bf16"
    if device.type == "cpu":
        found = sorted(cpu_flags() & set(CPU_BF16_FLAGS))
        if found:
            return "bf16", f"this CPU has {' and '.join(found)}"
        return "fp32", "this CPU has neither avx512_bf16 nor amx_bf16: bf16 would be emulated, many times slower"
    return "fp32", f"bf16 speed on {device.type} is not known to trainlab"


def resolve_device(name: str) -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an explicit choice must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is available; use --device auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("--device mps was asked for but MPS is not available; use --device auto or cpu")
    return torch.device(name)


def rng_state() -> dict[str, Any]:
    """Every random generator's state, as plain types and tensors: Python's, NumPy's, torch's CPU generator and,
    where CUDA is available, every GPU's generator (the one augmentation and dropout draw from on a GPU)."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back what rng_state() saved. GPU generators are restored on the GPUs this machine has: a run saved on
    a machine with more GPUs resumes the ones it trained on (device 0 first); a CPU machine ignores them."""
    random.setstate(_as_tuple(state["python"]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"])[: torch.cuda.device_count()])


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value
