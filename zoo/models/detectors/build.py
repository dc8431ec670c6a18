"""Build a detector from its config node."""
from __future__ import annotations

from typing import Any

from torch import nn

from zoo.registry import DETECTORS


def build_detector(cfg: Any, num_classes: int) -> nn.Module:
    """``cfg`` is the ``model`` node: ``{type: single_stage, backbone: {...}, ...}``."""
    return DETECTORS.build(cfg, num_classes=num_classes)
