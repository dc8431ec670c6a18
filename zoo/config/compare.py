"""Whether two run configs train the same run: what resume and the paper tables check."""
from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf


# Trainer and data keys that only change what is shown or written, or how fast, not the run itself.
_COSMETIC = {"progress", "log_every", "tensorboard", "plots", "eval_every", "checkpoint_every", "hooks", "smoke"}
_LOCATION = {"root", "ann_file", "image_dir"}  # where a data set lies: the same data set wherever it is
_COSMETIC_DATA = {"num_workers", "cache"}  # eval_images is not: a run scored on a few images is no table's row  # samples are keyed by (seed, epoch, position), not by who loads them or when


def run_config_differences(cfg: DictConfig, stored: DictConfig, shared_only: bool = False) -> list[str]:
    """The keys (model, data, evaluator, seed, non-cosmetic trainer.*) in which ``cfg`` would train another
    run than the one ``stored`` (a checkpoint's config) trained. ``shared_only`` compares only the leaves
    both configs have, so a key added to the configs since the run, with its default, is no difference."""
    current = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))

    def differs(a: Any, b: Any) -> bool:
        if shared_only and isinstance(a, DictConfig) and isinstance(b, DictConfig):
            return any(differs(a[k], b[k]) for k in set(a) & set(b))
        return a != b

    names = [k for k in ("model", "evaluator", "seed") if differs(current.get(k), stored.get(k))]
    if differs(*(_data_identity(node.get("data")) for node in (current, stored))):
        names.append("data")
    keys = set(current.trainer) & set(stored.trainer) if shared_only else set(current.trainer) | set(stored.trainer)
    names += [f"trainer.{k}" for k in keys
              if k not in _COSMETIC and differs(current.trainer.get(k), stored.trainer.get(k))]
    return sorted(names)


def _data_identity(node: Any) -> Any:
    """The data section without what does not change the run: its cosmetic keys, and where the data set lies (a run
    stores its root absolute, a config may name it relative to the project, and a table finished on another machine
    finds it elsewhere)."""
    if not isinstance(node, DictConfig):
        return node
    data = {k: v for k, v in OmegaConf.to_container(node).items() if k not in _COSMETIC_DATA | _LOCATION}
    for split, given in data.items():
        if split in ("train", "val", "test") and isinstance(given, dict):
            data[split] = {k: v for k, v in given.items() if k not in _LOCATION}
    return OmegaConf.create(data)
