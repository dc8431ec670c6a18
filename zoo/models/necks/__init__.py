"""Necks: take backbone features, return features; declare ``out_channels`` and ``strides``."""
from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from zoo.models.necks import fpn, identity, ssd_extras, tcb  # noqa: F401  (registration)
from zoo.registry import NECKS


def build_neck(node: Mapping | None, upstream: nn.Module) -> nn.Module:
    """A neck wired to the declared ``out_channels`` and ``strides`` of the module before it
    (no node: the identity neck)."""
    return NECKS.build(node or {"type": "none"}, in_channels=upstream.out_channels, in_strides=upstream.strides)
