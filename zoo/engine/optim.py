"""Optimizer and per-iteration learning-rate schedule from config."""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from zoo.registry import ConfigError

_SCHEDULE_KEYS = {"multistep": {"milestones", "gamma"}, "cosine": {"final"}, "constant": set()}
_OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def build_optimizer(model: nn.Module, cfg: Mapping[str, Any]) -> torch.optim.Optimizer:
    """``{type: sgd|adam|adamw, lr, weight_decay, norm_weight_decay, bias_lr_factor, ...}``; weight decay is
    not applied to norm layers and biases unless ``norm_weight_decay`` says otherwise; ``bias_lr_factor``
    multiplies the biases' learning rate (2 in the Caffe and Detectron releases of SSD, RefineDet, Faster R-CNN
    and FPN: their bias lr_mult). The fused implementation is used where the parameters allow it, unless
    ``fused`` or ``foreach`` is set."""
    cfg = dict(cfg)
    kind = cfg.pop("type", "sgd")
    if kind not in _OPTIMIZERS:
        raise ConfigError(f"trainer.optimizer.type '{kind}' is unknown; choose from {sorted(_OPTIMIZERS)}")
    weight_decay = cfg.pop("weight_decay", 0.0)
    norm_decay = cfg.pop("norm_weight_decay", 0.0)
    bias_factor = cfg.pop("bias_lr_factor", 1.0)
    if not bias_factor > 0:
        raise ConfigError(f"trainer.optimizer.bias_lr_factor must be > 0, got {bias_factor}")
    decay, no_decay, biases = [], [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim > 1:
            decay.append(param)
        else:  # biases apart only when their rate differs: the same two groups as before otherwise
            (biases if bias_factor != 1 and name.endswith(".bias") else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": norm_decay}]
    if biases:
        groups.append({"params": biases, "weight_decay": norm_decay, "lr": cfg.get("lr", 1e-3) * bias_factor})
    if "fused" not in cfg and "foreach" not in cfg and _fusable(decay + no_decay + biases):
        cfg["fused"] = True  # one kernel per step, not a loop over tensors (benchmarks/optimizer_step.py)
    try:
        return _OPTIMIZERS[kind](groups, **cfg)
    except TypeError as err:
        raise ConfigError(f"trainer.optimizer ({kind}): {err}") from err


def _fusable(params: list[torch.Tensor]) -> bool:
    return bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)


def lr_factor(step: int, total: int, schedule: Mapping[str, Any]) -> float:
    """Multiplier of the base learning rate at iteration ``step`` of ``total``.

    ``{type: multistep, milestones: [0.67, 0.89], gamma: 0.1}`` (milestones as fractions of the
    run, or as iteration counts when > 1), ``{type: cosine, final: 0.01}`` or ``{type: constant}``;
    all with ``warmup_iters`` of linear warm-up from ``warmup_factor``."""
    kind = schedule.get("type", "multistep")
    allowed = _SCHEDULE_KEYS.get(kind)
    if allowed is None:
        raise ConfigError(f"trainer.schedule.type '{kind}' is unknown; choose from {sorted(_SCHEDULE_KEYS)}")
    unknown = sorted(set(schedule) - allowed - {"type", "warmup_iters", "warmup_factor"})
    if unknown:
        raise ConfigError(f"trainer.schedule ({kind}): unknown key(s) {unknown}; accepted: {sorted(allowed)}, "
                          "warmup_iters, warmup_factor")
    warmup = int(schedule.get("warmup_iters", 0))
    if kind == "multistep":
        milestones = [m * total if m <= 1 else m for m in schedule.get("milestones", [])]
        factor = schedule.get("gamma", 0.1) ** sum(step >= m for m in milestones)
    elif kind == "cosine":
        final = schedule.get("final", 0.0)
        progress = min(step / max(total, 1), 1.0)
        factor = final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress))
    else:
        factor = 1.0
    if step < warmup:
        start = schedule.get("warmup_factor", 0.001)
        factor *= start + (1 - start) * step / warmup
    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, total: int, schedule: Mapping[str, Any],
                    spans: Callable[[int], tuple[int, int]] | None = None):
    """``spans(step) -> (position, length)`` restarts the schedule in each span (staged training
    runs the whole schedule within every stage, as Faster R-CNN's alternating steps do)."""
    schedule = dict(schedule)
    lr_factor(0, total, schedule)  # fail now on a bad schedule, not at the first step

    def factor(step: int) -> float:
        if spans is None:
            return lr_factor(step, total, schedule)
        position, length = spans(step)
        return lr_factor(position, length, schedule)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
