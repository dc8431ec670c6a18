"""``model.init_from=<checkpoint>``: start a new run from another run's (or an imported model's) weights. Every tensor
whose name and shape fit is loaded; the class-dependent ones (those whose shape follows the class count) are left at
their initialisation when the checkpoint's classes are not the run's; a few lines say what happened."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn

from zoo.config import stored_run_config
from zoo.engine.checkpoint import check_finite, load_checkpoint
from zoo.models.detectors import build_detector

SHOWN = 4  # names listed per line of the summary


def class_dependent(detector: Mapping[str, Any], num_classes: int) -> set[str]:
    """The names of the tensors whose shape follows the class count: built once more (on the meta device, no memory)
    with one class more, and compared."""
    with torch.device("meta"):
        one_more = build_detector(detector, num_classes=num_classes + 1).state_dict()
        these = build_detector(detector, num_classes=num_classes).state_dict()
    return {name for name, value in these.items() if one_more[name].shape != value.shape}


def init_from(model: nn.Module, path: str | Path, detector: Mapping[str, Any], class_names: Sequence[str],
              model_cfg: Any = None) -> list[str]:
    """Load ``path``'s fitting tensors into ``model`` (built from ``detector`` for ``class_names``); returns the summary
    lines. ``model_cfg`` (the run's model node) is compared with the checkpoint's: differing settings are listed, since
    weights trained under other conventions (anchors, normalisation) may need them."""
    state = load_checkpoint(path, required=("model", "class_names"))
    check_finite(state, path)
    theirs: dict[str, torch.Tensor] = state["model"]
    ours = model.state_dict()
    same_classes = list(state["class_names"]) == list(class_names)
    by_class = set() if same_classes else class_dependent(detector, len(class_names))
    loaded, reinit, misfit = {}, [], []
    for name, value in ours.items():
        if name not in theirs:
            continue
        if name in by_class:
            reinit.append(name)
        elif theirs[name].shape != value.shape:
            misfit.append(f"{name} {tuple(theirs[name].shape)}->{tuple(value.shape)}")
        else:
            loaded[name] = theirs[name]
    model.load_state_dict(loaded, strict=False)
    absent = [n for n in ours if n not in theirs and not n.endswith("num_batches_tracked")]
    unused = [n for n in theirs if n not in ours]
    lines = [f"model.init_from={path}: loaded {len(loaded)} of {len(ours)} tensors"]
    if reinit:
        lines.append(f"  re-initialised {len(reinit)} class-dependent ({_names(reinit)}): the checkpoint's "
                     f"{len(state['class_names'])} classes are not this run's {len(class_names)}")
    for label, names in (("skipped, shape differs", misfit), ("not in the checkpoint, kept as built", absent),
                         ("in the checkpoint, not in this model", unused)):
        if names:
            lines.append(f"  {label}: {len(names)} ({_names(names)})")
    if model_cfg is not None and state.get("config"):
        lines += _differing_settings(stored_run_config(state["config"], path), model_cfg)
    return lines


def _names(names: Sequence[str]) -> str:
    return ", ".join(names[:SHOWN]) + (f", ... {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def _differing_settings(stored, model_cfg) -> list[str]:
    """The model settings the checkpoint was trained (or imported) with that this run sets otherwise."""
    theirs = _flat(OmegaConf.to_container(stored.get("model") or {}, resolve=True))
    ours = _flat(OmegaConf.to_container(model_cfg, resolve=True) if OmegaConf.is_config(model_cfg) else model_cfg)
    keys = [k for k in theirs if k in ours and theirs[k] != ours[k] or k not in ours]
    skip = ("name", "init_from", "transforms.train")
    keys = [k for k in keys if not k.startswith(skip)]
    if not keys:
        return []
    shown = "; ".join(f"model.{k}: {theirs[k]} there, {ours.get(k, 'unset')} here" for k in keys[:SHOWN])
    more = f"; ... {len(keys) - SHOWN} more" if len(keys) > SHOWN else ""
    return [f"  the checkpoint's model settings differ: {shown}{more}"]


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, Mapping):
        out = {}
        for key, value in node.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}
