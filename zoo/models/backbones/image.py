"""The image itself as the only feature level (stride 1): R-CNN's RoI head crops and warps each proposal from the
image, and runs its own network on each crop (box features ``crop_cnn``)."""
from __future__ import annotations

import torch
from torch import nn

from zoo.registry import BACKBONES


@BACKBONES.register("image")
class ImageLevel(nn.Module):
    def __init__(self):
        super().__init__()
        self.out_channels = [3]
        self.strides = [1]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x]
