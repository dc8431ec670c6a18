"""The ranges of a run config's numeric settings: a value that would train backwards, divide by zero or train
nothing fails before anything is built, naming its key (the schemas check types, not ranges)."""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from omegaconf import OmegaConf

from zoo.registry import ConfigError


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# key -> (the check, what is expected); None passes where the schema allows it (optional keys).
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": (_integer, "an integer"),
    "trainer.max_epochs": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "trainer.max_iters": (lambda v: v is None or (_integer(v) and v >= 1), "null or an integer >= 1"),
    "trainer.batch_size": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "trainer.grad_clip": (lambda v: v is None or (_number(v) and v >= 0),
                          "null or 0 (no clipping) or a number > 0 (the largest gradient norm)"),
    "trainer.log_every": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "trainer.eval_every": (lambda v: _integer(v) and v >= 0, "an integer >= 0 (0: only at the end)"),
    "trainer.checkpoint_every": (lambda v: _integer(v) and v >= 0, "an integer >= 0 (0: at each epoch's end only)"),
    "trainer.optimizer.lr": (lambda v: _number(v) and v >= 0, "a finite number >= 0"),
    "trainer.optimizer.weight_decay": (lambda v: _number(v) and v >= 0, "a finite number >= 0"),
    "trainer.schedule.warmup_iters": (lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    "trainer.schedule.warmup_factor": (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "data.std": (lambda v: isinstance(v, list) and len(v) == 3 and all(_number(x) and x > 0 for x in v),
                 "three numbers > 0 (the images are divided by them)"),
    "data.mean": (lambda v: isinstance(v, list) and len(v) == 3 and all(_number(x) for x in v), "three numbers"),
    "data.num_workers": (lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    "data.size_divisor": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "data.eval_images": (lambda v: v is None or (_integer(v) and v >= 1), "null (all) or an integer >= 1"),
    "model.input_size": (lambda v: _integer(v) and v >= 1, "a positive integer (pixels)"),
    "model.size_divisor": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
}


def check_ranges(cfg: Mapping[str, Any]) -> None:
    """Raise ConfigError naming the first key of ``RULES`` whose value is out of its range (keys a config does not
    have are not checked)."""
    container = {key: OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
                 for key, value in cfg.items()}
    for key, (valid, expected) in RULES.items():
        found, value = _lookup(container, key)
        if found and not valid(value):
            raise ConfigError(f"{key} must be {expected}, got {value!r}")


def _lookup(container: Any, key: str) -> tuple[bool, Any]:
    node = container
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node
