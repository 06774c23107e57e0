"""Start and stop torch.distributed the way torchrun (or a single process) expects."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from gpt_parallel.config import DistributedConfig

from .errors import ArgsError


@dataclass(frozen=True)
class ProcessInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str
    owns_process_group: bool = False
    """True when this run initialised torch.distributed (and so tears it down at the end);
    a caller that initialised it first keeps it."""

    @property
    def is_first(self) -> bool:
        return self.rank == 0

    @property
    def is_last(self) -> bool:
        return self.rank == self.world_size - 1


def start_distributed(distributed: DistributedConfig) -> ProcessInfo:
    """One process, or the ranks torchrun started (RANK, WORLD_SIZE, MASTER_ADDR in the env)."""
    rank = int(os.getenv("RANK", "0"))
    world_size = int(os.getenv("WORLD_SIZE", "1"))
    local_rank = int(os.getenv("LOCAL_RANK", str(distributed.local_rank)))
    backend = distributed.distributed_backend
    if backend == "nccl" and not torch.cuda.is_available():
        backend = "gloo"  # the original's default; on a machine without CUDA gloo stands in
    if torch.cuda.is_available() and backend == "nccl":
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        device = torch.device("cuda", torch.cuda.current_device())
    else:
        device = torch.device("cpu")
    owns = False
    if world_size > 1 and not dist.is_initialized():
        if "MASTER_ADDR" not in os.environ:
            raise ArgsError("WORLD_SIZE > 1 needs torchrun (MASTER_ADDR/MASTER_PORT are not set)")
        dist.init_process_group(
            backend=backend,
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(minutes=distributed.distributed_timeout_minutes),
        )
        owns = True
    if dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
    return ProcessInfo(rank, world_size, local_rank, device, backend, owns)


def stop_distributed(process: ProcessInfo) -> None:
    """Wait for every rank, then tear down the process group this run started."""
    if dist.is_initialized():
        dist.barrier()
        if process.owns_process_group:
            dist.destroy_process_group()
