"""SSD extra layers: a 1x1 reduction then a 3x3 conv per added level, appended to the backbone's."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from zoo.models.layers import InputTooSmallError, conv_block
from zoo.registry import NECKS


@NECKS.register("ssd_extras")
class SSDExtras(nn.Module):
    """``layers`` lists ``[mid_channels, out_channels, stride, padding]`` per extra level, with an
    optional fifth entry for the kernel size (default 3; SSD512's last level uses 4)
    (SSD300: [[256, 512, 2, 1], [128, 256, 2, 1], [128, 256, 1, 0], [128, 256, 1, 0]])."""

    def __init__(self, in_channels: Sequence[int], in_strides: Sequence[int], layers: Sequence[Sequence[int]],
                 norm: str = "none"):
        super().__init__()
        blocks, ch, stride = [], in_channels[-1], in_strides[-1]
        self.out_channels, self.strides = list(in_channels), list(in_strides)
        for spec in layers:
            if len(spec) not in (4, 5):
                raise ValueError(f"ssd_extras: a layer is [mid, out, stride, padding(, kernel)], got {list(spec)}")
            mid, out, s, pad, kernel = (*spec, 3) if len(spec) == 4 else spec
            blocks.append(nn.Sequential(conv_block(ch, mid, 1, norm=norm),
                                        conv_block(mid, out, kernel, s, pad, norm=norm)))
            ch, stride = out, stride * 2  # a valid (padding 0) 3x3 shrinks the map: stride is nominal
            self.out_channels.append(out)
            self.strides.append(stride)
        self.extras = nn.ModuleList(blocks)
        for m in self.extras.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        outs, x = list(features), features[-1]
        for level, block in enumerate(self.extras):
            conv = block[1][0]
            if min(x.shape[-2:]) + 2 * conv.padding[0] < conv.kernel_size[0]:
                raise InputTooSmallError(f"ssd_extras: extra level {level} gets a {tuple(x.shape[-2:])} map, smaller than its "
                                 f"{conv.kernel_size[0]}x{conv.kernel_size[0]} conv; the input is too small for "
                                 "this model (raise model.input_size or drop extra layers)")
            x = block(x)
            outs.append(x)
        return outs
