"""Stacked hourglass backbone (CornerNet, Law & Deng 2018), following the authors' Hourglass-104."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock

from zoo.models.layers import conv_block, init_convs_from_scratch
from zoo.registry import BACKBONES


def _residual(in_channels: int, out_channels: int, stride: int = 1) -> BasicBlock:
    """CornerNet's residual block: 3x3 conv-BN-ReLU, 3x3 conv-BN, skip (1x1 conv-BN when the stride
    or width changes), ReLU after the sum -- exactly torchvision's BasicBlock with a downsample."""
    down = None
    if stride != 1 or in_channels != out_channels:
        down = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                             nn.BatchNorm2d(out_channels))
    return BasicBlock(in_channels, out_channels, stride=stride, downsample=down)


def _layer(in_channels: int, out_channels: int, n: int, stride: int = 1) -> nn.Sequential:
    """``n`` residual blocks; the first one changes stride and width."""
    blocks = [_residual(in_channels, out_channels, stride)]
    blocks += [_residual(out_channels, out_channels) for _ in range(n - 1)]
    return nn.Sequential(*blocks)


def _layer_reversed(in_channels: int, out_channels: int, n: int) -> nn.Sequential:
    """``n`` residual blocks; the last one changes width."""
    blocks = [_residual(in_channels, in_channels) for _ in range(n - 1)]
    blocks.append(_residual(in_channels, out_channels))
    return nn.Sequential(*blocks)


class HourglassModule(nn.Module):
    """One recursive hourglass of depth ``len(dims) - 1``: a skip branch (``up1``) at ``dims[0]`` and a
    branch that halves resolution with a stride-2 residual block (CornerNet uses no max-pool), recurses
    on ``dims[1:]``, returns to ``dims[0]`` and is upsampled (nearest) back to the skip's exact size."""

    def __init__(self, dims: Sequence[int], modules: Sequence[int]):
        super().__init__()
        cur_dim, next_dim = dims[0], dims[1]
        cur_mod, next_mod = modules[0], modules[1]
        self.up1 = _layer(cur_dim, cur_dim, cur_mod)
        # As in the authors' make_hg_layer: cur_mod blocks, the first with stride 2.
        self.low1 = _layer(cur_dim, next_dim, cur_mod, stride=2)
        self.low2: nn.Module = (HourglassModule(dims[1:], modules[1:]) if len(dims) > 2
                                else _layer(next_dim, next_dim, next_mod))
        self.low3 = _layer_reversed(next_dim, cur_dim, cur_mod)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up1 = self.up1(x)
        low = self.low3(self.low2(self.low1(x)))
        # Upsample to up1's exact size so odd intermediate sizes (e.g. 25 -> 13 -> 25) line up.
        return up1 + F.interpolate(low, size=up1.shape[-2:], mode="nearest")


@BACKBONES.register("hourglass")
class Hourglass(nn.Module):
    """Stacked hourglass network, CornerNet's backbone.

    Stem: 7x7 stride-2 conv-BN-ReLU to ``stem_channels`` then a stride-2 residual block to ``dims[0]``
    (stride 4). Then ``stacks`` hourglasses, each followed by a 3x3 conv-BN-ReLU to ``cnv_dim``; between
    stacks the input is merged with that output (BN(1x1 conv) of each, summed, ReLU, one residual
    block) for intermediate supervision. Returns every stack's ``cnv_dim`` map (all stride 4), so a head
    can supervise each; ``out_channels = [cnv_dim] * stacks`` and ``strides = [4] * stacks``.

    The defaults are CornerNet's Hourglass-104: 2 stacks, each hourglass 5 levels deep with widths
    (256, 256, 384, 384, 384, 512) and 2 residual blocks per level (4 at the innermost), 128-channel
    stem, 256-channel outputs; about 187M parameters here (the whole CornerNet is about 201M).
    Input sides should be divisible by 4 so the outputs are exactly H/4 x W/4; they need not be
    powers of two.
    """

    def __init__(self, stacks: int = 2, dims: Sequence[int] = (256, 256, 384, 384, 384, 512),
                 modules: Sequence[int] = (2, 2, 2, 2, 2, 4), stem_channels: int = 128, cnv_dim: int = 256):
        super().__init__()
        dims, modules = list(dims), list(modules)
        if stacks < 1:
            raise ValueError(f"hourglass: stacks must be >= 1, got {stacks}")
        if len(dims) != len(modules):
            raise ValueError(f"hourglass: dims {dims} and modules {modules} differ in length")
        if len(dims) < 2:
            raise ValueError(f"hourglass: dims {dims} needs at least 2 entries (depth len(dims) - 1 >= 1)")
        if min(modules) < 1 or min(dims) < 1 or stem_channels < 1 or cnv_dim < 1:
            raise ValueError(f"hourglass: dims {dims}, modules {modules}, stem_channels {stem_channels} "
                             f"and cnv_dim {cnv_dim} must all be positive")
        cur_dim = dims[0]
        self.stem = nn.Sequential(conv_block(3, stem_channels, 7, 2, norm="bn"),
                                  _residual(stem_channels, cur_dim, stride=2))
        self.hourglasses = nn.ModuleList(HourglassModule(dims, modules) for _ in range(stacks))
        self.cnvs = nn.ModuleList(conv_block(cur_dim, cnv_dim, 3, norm="bn") for _ in range(stacks))
        # Between stacks: BN(1x1 conv) of the stack's input and of its output, summed, ReLU, a residual block.
        self.merge_input = nn.ModuleList(conv_block(cur_dim, cur_dim, 1, norm="bn", relu=False)
                                         for _ in range(stacks - 1))
        self.merge_output = nn.ModuleList(conv_block(cnv_dim, cur_dim, 1, norm="bn", relu=False)
                                          for _ in range(stacks - 1))
        self.merge_blocks = nn.ModuleList(_residual(cur_dim, cur_dim) for _ in range(stacks - 1))
        self.relu = nn.ReLU(inplace=True)
        self.out_channels = [cnv_dim] * stacks
        self.strides = [4] * stacks
        init_convs_from_scratch(self)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        inter = self.stem(x)
        outs = []
        for i, (hourglass, cnv_layer) in enumerate(zip(self.hourglasses, self.cnvs)):
            cnv = cnv_layer(hourglass(inter))
            outs.append(cnv)
            if i < len(self.merge_blocks):
                inter = self.merge_blocks[i](self.relu(self.merge_input[i](inter) + self.merge_output[i](cnv)))
        return outs
