"""Config nodes -> data set and transform objects."""
from __future__ import annotations

from collections.abc import Mapping

from zoo.registry import DATASETS, TRANSFORMS


def build_transform(cfg):
    """``{type: ssd_train, size: 320, ...}`` -> a callable ``(image, boxes, labels, ignore, seed)``; None -> None."""
    return None if cfg is None else TRANSFORMS.build(cfg)


def build_dataset(cfg, split: str, transform=None):
    """``{type: voc, root: ..., class_names: [...]}`` for ``split``. ``split`` and ``transform`` are wired in
    here, so a data set config never carries them; ``transform`` may be a built transform or its config node."""
    if isinstance(transform, Mapping):  # omegaconf's DictConfig is a Mapping too
        transform = build_transform(transform)
    return DATASETS.build(cfg, split=split, transform=transform)
