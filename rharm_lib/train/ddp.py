"""Distributed data parallel set-up: the same ``rharm train`` under ``torchrun``.

``torchrun --no-python --nproc_per_node N rharm train ...``
sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``.
:func:`init_distributed` reads them and opens a process group: NCCL when CUDA is present,
gloo on the CPU. Each process then takes its shard of the data (see
:mod:`rharm_lib.train.sources`); gradients are averaged by
:class:`torch.nn.parallel.DistributedDataParallel`; evaluation, logs and checkpoints
are written by rank 0 only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "init_distributed", "barrier", "all_reduce_max", "shutdown"]


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job.

    Attributes:
        rank: global rank (0 when not distributed).
        world: number of processes (1 when not distributed).
        local_rank: rank on this machine (selects the CUDA device).
        backend: ``"nccl"``, ``"gloo"`` or ``""`` (not distributed).
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> DistInfo:
    """Open the process group when ``WORLD_SIZE > 1`` (as set by ``torchrun``).

    Args:
        device_type: ``"cuda"`` (NCCL) or ``"cpu"`` (gloo).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    backend = "nccl" if device_type == "cuda" else "gloo"
    if not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(rank=rank, world=world, local_rank=local_rank, backend=backend)


def barrier(info: DistInfo) -> None:
    """Wait for every process (no-op when not distributed)."""
    if info.enabled:
        dist.barrier()


def all_reduce_max(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Element-wise maximum over processes (identity when not distributed)."""
    if info.enabled:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return value


def shutdown(info: DistInfo) -> None:
    """Close the process group opened by :func:`init_distributed`."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
