"""Data-parallel plumbing for training: recognise a torchrun launch, start the process group
(NCCL on GPUs, gloo on CPU), put each rank on its device, and the few collectives the trainer
needs (a barrier, "did any rank run out of time").

    torchrun --nproc_per_node 8 -m training.cli train training/configs/arc1-small-gpu.toml

Outside torchrun (no WORLD_SIZE in the environment) everything reduces to one process: rank 0
of 1, no process group, collectives that return at once. This is the one module that reads
torchrun's environment variables.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

# Rank 0 evaluates and writes checkpoints while the others wait at a barrier; NCCL's default
# timeout (10 minutes) would cut a long evaluation short.
GROUP_TIMEOUT = datetime.timedelta(minutes=60)


@dataclass(frozen=True)
class Ranks:
    """Where this process sits in the job: global rank, rank on its machine, process count."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size or self.local_rank < 0:
            raise ValueError(f"rank {self.rank} (local {self.local_rank}) does not fit a world "
                             f"of {self.world_size}")

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that logs, evaluates and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def ranks_from_env(environ: Mapping[str, str] | None = None) -> Ranks:
    """Ranks from torchrun's WORLD_SIZE, RANK and LOCAL_RANK; one process when they are absent."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env:
        return Ranks()
    try:
        return Ranks(int(env.get("RANK", "0")), int(env.get("LOCAL_RANK", "0")),
                     int(env["WORLD_SIZE"]))
    except ValueError as err:
        raise ValueError(f"bad torchrun environment: {err}") from None


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """`auto` is CUDA when present, else CPU; a CUDA device without an index is the rank's own
    GPU (cuda:LOCAL_RANK), so one config serves one process or eight."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def start(device_name: str) -> Ranks:
    """Start the process group when launched by torchrun (NCCL for CUDA devices, gloo
    otherwise) and make the rank's GPU current; returns this process's ranks."""
    ranks = ranks_from_env()
    if not ranks.distributed or (dist.is_available() and dist.is_initialized()):
        return ranks
    device = resolve_device(device_name, ranks.local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, rank=ranks.rank, world_size=ranks.world_size,
                            timeout=GROUP_TIMEOUT)
    return ranks


def current() -> Ranks:
    """This process's ranks: those of the running process group, else a single process."""
    if not (dist.is_available() and dist.is_initialized()):
        return Ranks()
    local_rank = ranks_from_env().local_rank
    return Ranks(dist.get_rank(), local_rank, dist.get_world_size())


def barrier() -> None:
    """Wait for every rank (nothing to wait for in one process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when `flag` is true on any, so all ranks take the same branch (a
    per-rank clock must not let one rank stop while the others wait for it)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def stop() -> None:
    """Tear the process group down (a no-op without one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
