"""Checkpoints: written atomically, read back with ``weights_only=True``; the random state they carry."""
from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from zoo.utils.files import write_atomically


class CheckpointSaveError(ValueError):
    """A checkpoint could not be written (a full disk, a read-only folder); the previous one is left as it was."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Written atomically: a save that fails leaves the previous file whole, and says so in one line."""
    path = Path(path)
    try:
        write_atomically(path, lambda tmp: torch.save(state, tmp))
    except (OSError, RuntimeError) as error:  # torch reports a full disk as a RuntimeError from its zip writer
        kept = f"the previous {path.name} is intact" if path.is_file() else f"no earlier {path.name} exists"
        why = getattr(error, "strerror", None) or str(error).splitlines()[0]
        raise CheckpointSaveError(f"could not save checkpoint {path} ({type(error).__name__}: {why}); {kept}") from None


def non_finite_entries(tensors: dict[str, Any]) -> list[str]:
    """The names of the floating-point tensors (parameters, buffers) holding a NaN or an infinity: one check of them
    all (a single device sync), the names looked for only when it fails."""
    floats = {name: value for name, value in tensors.items()
              if isinstance(value, torch.Tensor) and value.is_floating_point()}
    if not floats or bool(torch.stack([torch.isfinite(v).all() for v in floats.values()]).all()):
        return []
    return [name for name, value in floats.items() if not torch.isfinite(value).all()]


def check_finite(state: dict[str, Any], path: str | Path) -> None:
    """Refuse a checkpoint whose weights are not all finite: it would score 0 or stop again where it stopped."""
    bad = non_finite_entries(state.get("model") or {})
    if bad:
        raise ValueError(f"checkpoint '{path}' holds non-finite values in {len(bad)} tensor(s) ({', '.join(bad[:3])}"
                         f"{', ...' if len(bad) > 3 else ''}): training diverged before it was saved; use an earlier "
                         "checkpoint")


CHECKPOINT_KEYS = ("model", "config", "class_names")  # what every reader of a zoo-train checkpoint needs


def load_checkpoint(path: str | Path, required: Sequence[str] = CHECKPOINT_KEYS) -> dict[str, Any]:
    """A checkpoint written by zoo-train, loaded with ``weights_only``; a file that cannot be read or
    lacks a ``required`` key fails naming the file."""
    path = Path(path)
    if path.is_dir():
        raise FileNotFoundError(f"checkpoint '{path}' is a folder; name the file (a run's checkpoints/last.pt or "
                                "best.pt)")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint '{path}' not found")
    if path.stat().st_size == 0:
        raise ValueError(f"checkpoint '{path}' is empty (0 bytes): a copy or a save that did not finish")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises pickle, zip and weights-only errors alike
        raise ValueError(f"checkpoint '{path}' cannot be read as a torch checkpoint ({type(error).__name__}: "
                         f"{error})") from error
    missing = [k for k in required if not isinstance(state, dict) or k not in state]
    if missing:
        raise ValueError(f"checkpoint '{path}' is not a zoo-train checkpoint: it lacks {missing} (a bare state_dict? "
                         "zoo-train writes checkpoints/last.pt and best.pt with the model, its config and class names)")
    return state


RESUME_KEYS = (*CHECKPOINT_KEYS, "optimizer", "scheduler", "scaler", "rng", "step")  # what resume=true restores


def rng_state(device: torch.device | None = None) -> dict[str, Any]:
    """The process's random state: CPU, Python and, on a CUDA ``device``, that GPU's generator (only this
    process's GPU: a resume on a machine with fewer GPUs must still find it)."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device | None = None) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuple(state["python"]))
    cuda = state.get("cuda")
    if cuda is None or device is None or device.type != "cuda":
        return
    if isinstance(cuda, list | tuple):  # older checkpoints: every visible GPU's state
        index = device.index or 0
        if index >= len(cuda):
            return
        cuda = cuda[index]
    torch.cuda.set_rng_state(cuda, device)


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value
