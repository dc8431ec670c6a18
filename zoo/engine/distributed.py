"""Single-node multi-GPU helpers for runs started by torchrun (one process per GPU)."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_distributed(device: torch.device) -> tuple[int, int]:
    """Join the process group torchrun describes in the environment; (rank, world_size)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1 or dist.is_initialized():
        return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size()


def local_device(requested: str) -> torch.device:
    """'auto' picks this process's GPU (LOCAL_RANK under torchrun) or the CPU."""
    if requested == "auto":
        if torch.cuda.is_available():
            index = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(index)
            return torch.device("cuda", index)
        return torch.device("cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device '{requested}' was asked for but CUDA is not available; use device=auto or cpu")
    return device


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return value
