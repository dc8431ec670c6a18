"""torchvision ResNets (18 to 152) returning any of their C2..C5 stage outputs."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models import resnet

from zoo.models.layers import load_weights, resnet_norm_layer
from zoo.models.layers import stride_in_1x1 as stride_into_1x1
from zoo.registry import BACKBONES

_DEPTHS = {18: resnet.resnet18, 34: resnet.resnet34, 50: resnet.resnet50, 101: resnet.resnet101,
           152: resnet.resnet152}
_STAGES = ("c2", "c3", "c4", "c5")


@BACKBONES.register("resnet")
class ResNet(nn.Module):
    """``outputs`` picks stages among c2 (stride 4) .. c5 (stride 32). ``weights`` is an optional
    local torchvision state dict of the same depth (ImageNet); the classifier is dropped.
    ``frozen_stages`` n stops gradients through the stem and the first n stages (c2.. ), as
    fine-tuning from ImageNet usually does. ``norm``: ``bn`` or ``frozen_bn`` (see resnet_norm_layer).
    ``stride_in_1x1``: the MSRA layout (detectron2's weights), see zoo.models.layers.stride_in_1x1."""

    def __init__(self, depth: int = 50, outputs: Sequence[str] = ("c3", "c4", "c5"), weights: str | None = None,
                 frozen_stages: int = 0, norm: str = "bn", stride_in_1x1: bool = False):
        super().__init__()
        if depth not in _DEPTHS:
            raise ValueError(f"resnet: depth must be one of {sorted(_DEPTHS)}, got {depth}")
        unknown = [o for o in outputs if o not in _STAGES]
        if unknown or not outputs:
            raise ValueError(f"resnet: outputs {list(outputs)} must be a non-empty subset of {list(_STAGES)}")
        if not 0 <= frozen_stages <= 4:
            raise ValueError(f"resnet: frozen_stages must be 0..4, got {frozen_stages}")
        full = _DEPTHS[depth](weights=None, norm_layer=resnet_norm_layer(norm, "resnet"))
        load_weights(full, weights, f"resnet{depth}", f"resnet{depth}")
        if stride_in_1x1:
            if depth < 50:
                raise ValueError(f"resnet: stride_in_1x1 needs bottleneck blocks (depth 50+), got depth {depth}")
            stride_into_1x1([full.layer2, full.layer3, full.layer4])
        self.stem = nn.Sequential(full.conv1, full.bn1, full.relu, full.maxpool)
        self.stages = nn.ModuleList([full.layer1, full.layer2, full.layer3, full.layer4])
        self.outputs = [s for s in _STAGES if s in outputs]
        self.last = max(_STAGES.index(s) for s in self.outputs)
        self.stages = self.stages[: self.last + 1]  # deeper stages would be dead weight
        width = 4 if depth >= 50 else 1  # bottleneck expansion
        self.out_channels = [64 * 2**_STAGES.index(s) * width for s in self.outputs]
        self.strides = [4 * 2**_STAGES.index(s) for s in self.outputs]
        for module in [self.stem, *self.stages[:frozen_stages]] if frozen_stages else []:
            module.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if _STAGES[i] in self.outputs:
                outs.append(x)
        return outs
