"""Build a detector from its config node."""
from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from zoo.registry import DETECTORS


def build_detector(cfg: Any, num_classes: int) -> nn.Module:
    """``cfg`` is the ``model`` node: ``{type: single_stage, backbone: {...}, ...}``."""
    return DETECTORS.build(cfg, num_classes=num_classes)


def takes_proposals(detector: nn.Module) -> bool:
    """Whether ``detector`` detects on given proposals (its forward takes ``proposals``: Fast R-CNN, SPP-net, R-CNN)
    rather than finding its own regions from the image alone."""
    return "proposals" in inspect.signature(detector.forward).parameters
