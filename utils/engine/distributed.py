"""Process and device setup for training: one process, or one per GPU under ``torchrun``.

    torchrun --nproc_per_node=4 run/Train.py --config configs/InSPyReNet_SwinB.yaml
    python -m torch.distributed.run --nproc_per_node=2 run/Train.py --config ... --device cpu

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`init_distributed` reads
them, joins the process group (NCCL on CUDA, Gloo on CPU) and returns a :class:`DistInfo`. A
plain ``python`` launch is a world of one, and every collective helper here is then a no-op, so
callers never branch on "distributed or not". We use ``torch.distributed`` itself rather than a
wrapper library: these helpers only adapt it to that single code path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from inspect import signature
from typing import Any

import torch
import torch.distributed as dist

from utils.runtime import select_device


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: its rank among ``world_size`` processes and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on the one process that writes files and shows progress bars (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when a process group with more than one member is running."""
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """True when ``torchrun`` (or ``python -m torch.distributed.run``) started this process."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_distributed(device: str | None = None) -> DistInfo:
    """Join the ``torchrun`` process group if there is one; return this process's DistInfo.

    The backend is NCCL when the device is a GPU and Gloo otherwise; each process uses GPU
    ``LOCAL_RANK``. Without torchrun this returns a world of one on ``select_device(device)``.
    """
    if not launched_by_torchrun():
        return DistInfo(0, 1, 0, select_device(device))
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    chosen = select_device(device, local_rank)
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if chosen.type == "cuda" else "gloo"
        kwargs = {}
        if chosen.type == "cuda" and "device_id" in signature(dist.init_process_group).parameters:
            kwargs["device_id"] = chosen  # torch >= 2.3: binds the NCCL group to this GPU
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size, **kwargs)
    return DistInfo(rank, world_size, local_rank, chosen)


def shutdown_distributed() -> None:
    """Leave the process group (safe to call when there is none)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active(info: DistInfo) -> bool:
    return info.distributed and dist.is_initialized()


def broadcast_object(value: Any, info: DistInfo) -> Any:
    """Rank 0's ``value`` on every rank (picklable objects only)."""
    if not _active(info):
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def gather_objects(value: Any, info: DistInfo) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank."""
    if not _active(info):
        return [value]
    values: list[Any] = [None] * info.world_size
    dist.all_gather_object(values, value)
    return values


def broadcast_tensors(tensors: list[torch.Tensor], info: DistInfo) -> None:
    """Overwrite ``tensors`` on every rank with rank 0's values, in place (same shapes on all)."""
    if not _active(info):
        return
    for tensor in tensors:
        dist.broadcast(tensor, src=0)


def any_rank(flags: list[bool], info: DistInfo) -> list[bool]:
    """Element-wise OR of ``flags`` over all ranks: one small all-reduce for several flags."""
    if not _active(info):
        return list(flags)
    tensor = torch.tensor([float(flag) for flag in flags], device=info.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return [bool(value) for value in tensor.tolist()]


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op in a world of one)."""
    if _active(info):
        dist.barrier()
