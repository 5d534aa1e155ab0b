"""Data-parallel set-up for ``torchrun`` (DistributedDataParallel; NCCL on GPUs, gloo on CPU).

Launch: ``torchrun --nproc_per_node=N [--nnodes=M --rdzv_backend=c10d --rdzv_endpoint=HOST:PORT]
-m tdmi_core.train ...``. Without torchrun's environment everything runs in one process.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: global ``rank`` of ``world_size``, ``local_rank`` on its node, its device."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """'auto' -> the local CUDA device when available, else CPU; 'cuda' without a GPU raises."""
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no CUDA device is available; use --device cpu")
    return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))


def init_distributed(device: str = "auto", backend: str = "auto") -> DistInfo:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1 (else a single-process DistInfo)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if backend == "auto":
            backend = "nccl" if dev.type == "cuda" else "gloo"
        if backend == "nccl" and dev.type != "cuda":
            raise RuntimeError("dist_backend 'nccl' needs CUDA devices; use gloo on CPU")
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
        logger.info("joined process group: rank %d/%d (local %d), backend %s, device %s",
                    rank, world_size, local_rank, backend, dev)
    return DistInfo(rank, local_rank, world_size, dev)


def cleanup_distributed() -> None:
    """Leave the process group (no-op in single-process runs)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a tensor over all processes (returns the input unchanged in single-process runs)."""
    if not info.distributed:
        return values
    out = values.detach().clone().to(info.device if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.to(values.device)


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()
