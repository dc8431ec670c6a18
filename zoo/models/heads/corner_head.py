"""CornerNet's prediction modules: per stack and per corner type, corner pooling then heatmaps,
embeddings and offsets."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from zoo.models.layers import conv_block
from zoo.ops.corner_pool import CORNER_POOLS
from zoo.registry import HEADS


class CornerPoolModule(nn.Module):
    """Two 3x3 conv-BN-ReLU branches, each corner-pooled in its direction and summed; 3x3 conv-BN plus
    a 1x1 conv-BN shortcut, ReLU, then a 3x3 conv-BN-ReLU. ``corner_pool=False`` sums the branches
    unpooled (the paper's Table 1 ablation: the same network without corner pooling)."""

    def __init__(self, channels: int, pool_channels: int, corner: str, corner_pool: bool = True):
        super().__init__()
        self.branches = nn.ModuleList(conv_block(channels, pool_channels, 3, norm="bn") for _ in range(2))
        self.pools = CORNER_POOLS[corner] if corner_pool else (nn.Identity(), nn.Identity())
        self.merge = conv_block(pool_channels, channels, 3, norm="bn", relu=False)
        self.shortcut = conv_block(channels, channels, 1, norm="bn", relu=False)
        self.out = conv_block(channels, channels, 3, norm="bn")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = sum(pool(branch(x)) for pool, branch in zip(self.pools, self.branches))
        return self.out(torch.relu(self.merge(pooled) + self.shortcut(x)))


def _output(channels: int, hidden: int, out: int, bias: float = 0.0) -> nn.Sequential:
    layers = nn.Sequential(nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(hidden, out, 1))
    nn.init.constant_(layers[-1].bias, bias)
    return layers


@HEADS.register("corner_head")
class CornerHead(nn.Module):
    """For each input level (one per Hourglass stack, all the same stride) and each corner type
    (top-left, bottom-right): a ``CornerPoolModule`` and three outputs, ``heat`` (C logits, bias
    -log((1 - 0.1) / 0.1) so training starts at p = 0.1), ``embed`` (1) and ``offset`` (2). Stacks do
    not share weights. In eval only the last stack is computed."""

    def __init__(self, in_channels: Sequence[int], num_classes: int, pool_channels: int = 128,
                 hidden_channels: int | None = None, corner_pool: bool = True, prior_prob: float = 0.1):
        super().__init__()
        if len(set(in_channels)) != 1:
            raise ValueError(f"corner_head: every stack must have the same channels, got {list(in_channels)}")
        channels = in_channels[0]
        hidden = hidden_channels or channels
        bias = -math.log((1 - prior_prob) / prior_prob)
        self.corner_pool = corner_pool
        self.stacks = nn.ModuleList()
        for _ in in_channels:
            stack = nn.ModuleDict()
            for corner in CORNER_POOLS:
                stack[corner] = nn.ModuleDict({
                    "pool": CornerPoolModule(channels, pool_channels, corner, corner_pool),
                    "heat": _output(channels, hidden, num_classes, bias),
                    "embed": _output(channels, hidden, 1),
                    "offset": _output(channels, hidden, 2)})
            self.stacks.append(stack)

    def forward(self, features: Sequence[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """Per computed stack: ``heat`` (B, 2, C, H, W), ``embed`` (B, 2, H, W), ``offset`` (B, 2, 2, H, W);
        corner type 0 is top-left, 1 bottom-right."""
        pairs = list(zip(self.stacks, features))
        outputs = []
        for stack, x in (pairs if self.training else pairs[-1:]):
            per_corner = []
            for corner in CORNER_POOLS:
                y = stack[corner]["pool"](x)
                per_corner.append({name: stack[corner][name](y) for name in ("heat", "embed", "offset")})
            outputs.append({"heat": torch.stack([c["heat"] for c in per_corner], 1),
                            "embed": torch.stack([c["embed"][:, 0] for c in per_corner], 1),
                            "offset": torch.stack([c["offset"] for c in per_corner], 1)})
        return outputs
