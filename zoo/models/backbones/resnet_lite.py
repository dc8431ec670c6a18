"""A small residual network for CPU-sized configs (trained from scratch, so BatchNorm throughout)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock

from zoo.models.layers import conv_block, init_convs_from_scratch
from zoo.registry import BACKBONES


@BACKBONES.register("resnet_lite")
class ResNetLite(nn.Module):
    """Stem (two stride-2 3x3 convs, stride 4) then one stage of torchvision BasicBlocks per entry
    of ``widths``, each halving resolution. ``out_stages`` picks which stages are returned
    (0-based; stage i has stride 8 * 2**i)."""

    def __init__(self, widths: Sequence[int] = (64, 128, 256), blocks: Sequence[int] = (2, 2, 2),
                 stem_channels: int = 32, out_stages: Sequence[int] | None = None):
        super().__init__()
        if len(widths) != len(blocks):
            raise ValueError(f"resnet_lite: widths {list(widths)} and blocks {list(blocks)} differ in length")
        self.stem = nn.Sequential(conv_block(3, stem_channels // 2, 3, 2, norm="bn"),
                                  conv_block(stem_channels // 2, stem_channels, 3, 2, norm="bn"))
        stages, in_ch = [], stem_channels
        for width, n in zip(widths, blocks):
            down = nn.Sequential(nn.Conv2d(in_ch, width, 1, 2, bias=False), nn.BatchNorm2d(width))
            layers = [BasicBlock(in_ch, width, stride=2, downsample=down)]
            layers += [BasicBlock(width, width) for _ in range(n - 1)]
            stages.append(nn.Sequential(*layers))
            in_ch = width
        self.stages = nn.ModuleList(stages)
        self.out_stages = list(range(len(widths))) if out_stages is None else list(out_stages)
        self.out_channels = [widths[i] for i in self.out_stages]
        self.strides = [8 * 2**i for i in self.out_stages]
        init_convs_from_scratch(self)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_stages:
                outs.append(x)
        return outs
