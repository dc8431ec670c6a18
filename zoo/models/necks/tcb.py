"""RefineDet's transfer connection block: carries ARM features to the ODM, adding deeper context."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from zoo.models.layers import conv_block
from zoo.registry import NECKS


@NECKS.register("tcb")
class TransferConnectionBlock(nn.Module):
    """Per level: conv-ReLU-conv to ``channels``; add a 2x2 stride-2 deconvolution of the next
    deeper level's output (none for the deepest); then ReLU-conv-ReLU. Runs top-down from the
    deepest level, so each output sees every deeper one. ``norm='bn'`` adds BatchNorm after each
    conv for from-scratch training."""

    def __init__(self, in_channels: Sequence[int], in_strides: Sequence[int], channels: int = 256, norm: str = "none"):
        super().__init__()
        levels = len(in_channels)
        self.lateral = nn.ModuleList(
            nn.Sequential(conv_block(c, channels, norm=norm), conv_block(channels, channels, norm=norm, relu=False))
            for c in in_channels)
        self.upsample = nn.ModuleList(nn.ConvTranspose2d(channels, channels, 2, stride=2) for _ in range(levels - 1))
        self.fuse = nn.ModuleList(
            nn.Sequential(nn.ReLU(inplace=False), conv_block(channels, channels, norm=norm)) for _ in range(levels))
        self.out_channels = [channels] * levels
        self.strides = list(in_strides)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        outs: list[torch.Tensor] = [None] * len(features)  # type: ignore[list-item]
        deeper = None
        for level in reversed(range(len(features))):
            x = self.lateral[level](features[level])
            if deeper is not None:
                x = x + self._upsample(level, deeper, x.shape[-2:])
            deeper = outs[level] = self.fuse[level](x)
        return outs

    def _upsample(self, level: int, deeper: torch.Tensor, size: torch.Size) -> torch.Tensor:
        up = self.upsample[level](deeper)
        # Deeper maps are ceil(n / 2) of shallower ones, so the deconvolution is exact or one too big.
        if up.shape[-2] < size[0] or up.shape[-1] < size[1]:
            raise ValueError(f"tcb: level {level + 1} ({tuple(deeper.shape[-2:])}) upsamples to "
                             f"{tuple(up.shape[-2:])}, smaller than level {level} ({tuple(size)})")
        return up[..., : size[0], : size[1]]
