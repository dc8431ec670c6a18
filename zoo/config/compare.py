"""Whether two run configs train the same run: what resume and the paper tables check."""
from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from zoo.config.paths import root_in_project


# Trainer and data keys that only change what is shown or written, or how fast, not the run itself.
_COSMETIC = {"progress", "log_every", "tensorboard", "plots", "eval_every", "checkpoint_every", "hooks", "smoke"}
_COSMETIC_DATA = {"num_workers", "cache"}  # eval_images is not: a run scored on a few images is no table's row  # samples are keyed by (seed, epoch, position), not by who loads them or when


def run_config_differences(cfg: DictConfig, stored: DictConfig, shared_only: bool = False) -> list[str]:
    """The keys (model, data, evaluator, seed, non-cosmetic trainer.*) in which ``cfg`` would train another
    run than the one ``stored`` (a checkpoint's config) trained. ``shared_only`` compares only the leaves
    both configs have, so a key added to the configs since the run, with its default, is no difference."""
    current = OmegaConf.create(OmegaConf.to_container(cfg))
    root_in_project(current)  # as a run stores it: a relative data root made absolute before the splits resolve it
    current = OmegaConf.create(OmegaConf.to_container(current, resolve=True))

    def differs(a: Any, b: Any) -> bool:
        if shared_only and isinstance(a, DictConfig) and isinstance(b, DictConfig):
            return any(differs(a[k], b[k]) for k in set(a) & set(b))
        return a != b

    names = [k for k in ("model", "evaluator", "seed") if differs(current.get(k), stored.get(k))]
    if differs(*(_without(node.get("data"), _COSMETIC_DATA) for node in (current, stored))):
        names.append("data")
    keys = set(current.trainer) & set(stored.trainer) if shared_only else set(current.trainer) | set(stored.trainer)
    names += [f"trainer.{k}" for k in keys
              if k not in _COSMETIC and differs(current.trainer.get(k), stored.trainer.get(k))]
    return sorted(names)


def _without(node: Any, keys: set[str]) -> Any:
    if not isinstance(node, DictConfig):
        return node
    return OmegaConf.create({k: v for k, v in OmegaConf.to_container(node).items() if k not in keys})
