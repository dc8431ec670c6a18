"""SSD-style head: one 3x3 conv for class scores and one for box offsets on each level."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from zoo.registry import HEADS


def flatten_levels(outputs: Sequence[torch.Tensor], width: int) -> torch.Tensor:
    """(B, A*width, H, W) per level -> (B, sum H*W*A, width), cell-major then anchor."""
    batch = outputs[0].shape[0]
    return torch.cat([o.permute(0, 2, 3, 1).reshape(batch, -1, width) for o in outputs], dim=1)


@HEADS.register("ssd_head")
class SSDHead(nn.Module):
    """Predicts ``num_scores`` logits and 4 box offsets per anchor. Used as SSD's head, RefineDet's
    ARM (2 scores) and ODM (C+1 scores): the same design with different widths."""

    def __init__(self, in_channels: Sequence[int], num_anchors: Sequence[int], num_scores: int, kernel_size: int = 3):
        super().__init__()
        if len(in_channels) != len(num_anchors):
            raise ValueError(f"ssd_head: {len(in_channels)} feature levels but anchors for {len(num_anchors)}")
        pad = kernel_size // 2
        self.num_scores = num_scores
        self.cls = nn.ModuleList(nn.Conv2d(c, a * num_scores, kernel_size, padding=pad)
                                 for c, a in zip(in_channels, num_anchors))
        self.box = nn.ModuleList(nn.Conv2d(c, a * 4, kernel_size, padding=pad) for c, a in zip(in_channels, num_anchors))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, features: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        scores = flatten_levels([conv(f) for conv, f in zip(self.cls, features)], self.num_scores)
        deltas = flatten_levels([conv(f) for conv, f in zip(self.box, features)], 4)
        return scores, deltas
