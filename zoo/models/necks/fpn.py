"""Feature pyramid network (Lin et al. 2017), with the switches of its Table 1 ablations.

Hand-written rather than torchvision.ops.FeaturePyramidNetwork because the ablations (no lateral
connections, no top-down pathway, the finest level only) need to cut its wiring."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from zoo.registry import NECKS


@NECKS.register("fpn")
class FPN(nn.Module):
    """Inputs C2..C5 (any consecutive strides); outputs P-levels of ``channels`` each.

    ``lateral``: 1x1 lateral connections from every input (false: only the deepest input enters,
    through its 1x1, and the finer levels are its upsampled copies: "top-down without lateral").
    ``top_down``: add the upsampled coarser level (false: a "bottom-up pyramid" of 1x1 + 3x3 per
    input). ``p6``: add a stride-2 subsampling of the coarsest output (the RPN's P6).
    ``finest_only``: return only the finest level, without P6 (the paper's "only P2" row)."""

    def __init__(self, in_channels: Sequence[int], in_strides: Sequence[int], channels: int = 256,
                 lateral: bool = True, top_down: bool = True, p6: bool = True, finest_only: bool = False):
        super().__init__()
        if not lateral and not top_down:
            raise ValueError("fpn: lateral=false and top_down=false leaves the finer levels with no input")
        self.lateral, self.top_down, self.p6, self.finest_only = lateral, top_down, p6, finest_only
        levels = len(in_channels)
        lateral_inputs = range(levels) if lateral else [levels - 1]
        self.laterals = nn.ModuleDict({str(i): nn.Conv2d(in_channels[i], channels, 1) for i in lateral_inputs})
        # Only the returned levels get an output conv: no parameter goes unused (DDP requires it).
        self.outputs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(1 if finest_only else levels))
        strides = list(in_strides) + ([in_strides[-1] * 2] if p6 and not finest_only else [])
        self.strides = strides[:1] if finest_only else strides
        self.roi_strides = self.strides[:len(in_strides)]  # P6 is the RPN's alone (Detectron, torchvision)
        self.out_channels = [channels] * len(self.strides)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.zeros_(m.bias)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        merged: list[torch.Tensor] = [None] * len(features)  # type: ignore[list-item]
        coarser = None
        for i in reversed(range(len(features))):
            x = self.laterals[str(i)](features[i]) if str(i) in self.laterals else None
            if coarser is not None and self.top_down:
                up = F.interpolate(coarser, size=features[i].shape[-2:], mode="nearest")
                x = up if x is None else x + up
            merged[i] = coarser = x
        outs = [conv(x) for conv, x in zip(self.outputs, merged)]
        if len(self.strides) > len(outs):  # P6 for the RPN
            outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2))
        return outs
