"""Whether two run configs train the same run: what resume and the paper tables check."""
from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf


# Trainer and data keys that only change what is shown or written, or how fast, not the run itself.
_COSMETIC = {"progress", "log_every", "tensorboard", "plots", "eval_every", "checkpoint_every", "hooks", "smoke"}
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
    """The data section without what does not change the run: its cosmetic keys, and where the data set lies. A run
    stores its root absolute, a config may name it relative to the project, and a table finished on another machine
    finds it elsewhere: ``data.root`` is left out, and each split's paths under it are compared from it (a split
    reading another folder, or another list of them, is still another run)."""
    if not isinstance(node, DictConfig):
        return node
    data = {k: v for k, v in OmegaConf.to_container(node).items() if k not in _COSMETIC_DATA}
    root = data.pop("root", None)
    if isinstance(root, str) and root:
        data = _under_root(data, root.rstrip("/"))
    return OmegaConf.create(data)


def _under_root(value: Any, root: str) -> Any:
    """Every path string below ``root`` named from it (``<data.root>/VOC2007``), through dicts and lists."""
    if isinstance(value, dict):
        return {k: _under_root(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [_under_root(v, root) for v in value]
    if isinstance(value, str) and (value == root or value.startswith(root + "/")):
        return "<data.root>" + value[len(root):]
    return value
