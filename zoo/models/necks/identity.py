"""The empty neck: backbone features go straight to the head (``model/neck=none``)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from zoo.registry import NECKS


@NECKS.register("none")
class IdentityNeck(nn.Module):
    def __init__(self, in_channels: Sequence[int], in_strides: Sequence[int]):
        super().__init__()
        self.out_channels = list(in_channels)
        self.strides = list(in_strides)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        return features
