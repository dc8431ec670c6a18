"""Single-node multi-GPU helpers for runs started by torchrun (one process per GPU)."""
from __future__ import annotations

import atexit
import datetime
import os
from typing import Any

import torch
import torch.distributed as dist


def init_distributed(device: torch.device) -> tuple[int, int]:
    """Join the process group torchrun describes in the environment; (rank, world_size)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1 or dist.is_initialized():
        return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    backend = "nccl" if device.type == "cuda" else "gloo"
    # Rank 0 scores the gathered detections alone while the others wait at a collective: a COCO evaluation can
    # outlast the 10-minute default, after which the watchdog would kill the run.
    dist.init_process_group(backend, timeout=datetime.timedelta(hours=2))
    atexit.register(_leave)  # left to the interpreter's teardown, gloo's threads can abort the process as it exits
    return dist.get_rank(), dist.get_world_size()


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def local_device(requested: str) -> torch.device:
    """'auto' picks this process's GPU (LOCAL_RANK under torchrun) or the CPU; a bare 'cuda' is this
    process's GPU too, so torchrun's ranks never pile onto GPU 0."""
    if requested == "auto" and not torch.cuda.is_available():
        return torch.device("cpu")
    try:
        device = torch.device("cuda" if requested == "auto" else requested)
    except RuntimeError as err:  # torch's message lists every backend it knows; the zoo runs on two
        raise ValueError(f"device '{requested}' is not a device: use auto, cpu, cuda or cuda:<index>") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{requested}' was asked for but CUDA is not available; use device=auto or cpu")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return device


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the process group this process joined; (0, 1) outside torchrun."""
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return value


def gather_from_all(value: Any) -> list[Any]:
    """Every rank's ``value`` in rank order (a list of one outside torchrun); every rank must call it."""
    if not dist.is_initialized():
        return [value]
    values: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def from_main(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (``value`` itself outside torchrun); every rank must call it."""
    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
