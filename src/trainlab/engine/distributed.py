"""More than one process: torchrun's environment, the process group, and the few collectives a run needs.

A run started by torchrun (WORLD_SIZE > 1) joins the process group once (gloo on CPU, NCCL on CUDA, one GPU
per process), with a collective timeout so that a lost process never blocks the others for torch's default
30 minutes. Everything else in trainlab asks `current()`: a single process gets a Distributed of one whose
collectives return their input, so the code paths are the same.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import dataclass
from typing import Any

import torch

from trainlab.errors import CheckpointError, TrainlabError

TIMEOUT_ENV = "TRAINLAB_DIST_TIMEOUT"  # seconds a collective may wait for the other processes
DEFAULT_TIMEOUT_SECONDS = 300
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600  # a week; torch keeps the timeout in milliseconds and overflows far above


@dataclass(frozen=True)
class Distributed:
    """This process's place in the run: rank of world, and the local rank that picks its GPU."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def primary(self) -> bool:
        """The one process that prints and writes the run directory."""
        return self.rank == 0

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sums over every process (float64, so counts stay exact)."""
        if not self.active:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self.collective_device())
        torch.distributed.all_reduce(tensor)
        return tensor.tolist()

    def broadcast(self, value: Any) -> Any:
        """Rank 0's `value` on every process."""
        if not self.active:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every process's `value`, in rank order, on every process."""
        if not self.active:
            return [value]
        values: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(values, value)
        return values

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()

    def collective_device(self) -> torch.device:
        if self.active and torch.distributed.get_backend() == "nccl":
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")


_CURRENT = Distributed()


def current() -> Distributed:
    """This process's Distributed: one of one unless join() found torchrun's environment."""
    return _CURRENT


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def collective_timeout() -> float:
    """TRAINLAB_DIST_TIMEOUT in seconds (default 300): a number above 0, up to a week."""
    text = os.environ.get(TIMEOUT_ENV)
    if text is None:
        return DEFAULT_TIMEOUT_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= MAX_TIMEOUT_SECONDS:  # NaN fails this too
        raise TrainlabError(
            f"{TIMEOUT_ENV} must be the seconds a collective may wait, above 0 and up to {MAX_TIMEOUT_SECONDS:,} "
            f"(a week), got {text!r}; set it to a number such as 600, or unset it for {DEFAULT_TIMEOUT_SECONDS}"
        )
    return seconds


def check_same_process_count(path: object, saved_world: int, world: int) -> None:
    """A run resumes only with the processes it ran with: its random streams and batches belong to their number."""
    if saved_world != world:
        how = "without torchrun" if saved_world == 1 else f"with --nproc {saved_world}"
        raise CheckpointError(
            f"{path} was trained by {saved_world} process(es) and this run has {world}; "
            f"resume it {how} (a run's random streams and batches belong to its number of processes)"
        )


def join(device: str) -> Distributed:
    """Join torchrun's process group (once per process) and return this process's place in it."""
    global _CURRENT
    if not launched_by_torchrun():
        return _CURRENT
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not torch.distributed.is_initialized():
        seconds = collective_timeout()
        cuda = device in ("auto", "cuda") and torch.cuda.is_available()
        if device == "cuda" and not cuda:
            raise TrainlabError("--device cuda under torchrun, but CUDA is not available; use --device cpu")
        if cuda:
            torch.cuda.set_device(local_rank)
        torch.distributed.init_process_group("nccl" if cuda else "gloo", timeout=dt.timedelta(seconds=seconds))
    _CURRENT = Distributed(
        rank=torch.distributed.get_rank(),
        world=torch.distributed.get_world_size(),
        local_rank=local_rank,
    )
    return _CURRENT


def leave() -> None:
    """Leave the process group at the end of the run (torchrun's processes exit right after)."""
    global _CURRENT
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    _CURRENT = Distributed()
