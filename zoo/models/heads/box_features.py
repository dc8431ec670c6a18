"""RoI feature heads: pooled RoI maps (R, C, S, S) -> one vector per RoI. Registered as heads and
built by the RoI box head, which wires ``in_channels`` and ``resolution`` from its pooler."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torchvision.models import resnet, vgg16

from zoo.models.layers import has_classifier, load_weights, resnet_norm_layer
from zoo.models.layers import stride_in_1x1 as stride_into_1x1
from zoo.registry import BACKBONES, HEADS

_BOTTLENECK_RESNETS = {50: resnet.resnet50, 101: resnet.resnet101, 152: resnet.resnet152}


def grid(resolution: int | Sequence[int]) -> tuple[int, int]:
    """A pooler's output grid as (height, width): a square side, or SPP's (1, bins)."""
    return (int(resolution), int(resolution)) if isinstance(resolution, int) else (int(resolution[0]),
                                                                                   int(resolution[1]))


@HEADS.register("two_fc")
class TwoFCHead(nn.Module):
    """Flatten, then two fully connected layers with ReLU (FPN's head; 1024-d)."""

    def __init__(self, in_channels: int, resolution: int | Sequence[int], dim: int = 1024):
        super().__init__()
        height, width = grid(resolution)
        self.fc6 = nn.Linear(in_channels * height * width, dim)
        self.fc7 = nn.Linear(dim, dim)
        self.out_dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc7(torch.relu(self.fc6(x.flatten(1)))))


@HEADS.register("vgg_fc")
class VGGFCHead(nn.Module):
    """VGG16's fc6 and fc7 (4096-d, dropout), as Faster R-CNN VGG16 uses them on 7x7 RoIs of
    conv5_3. ``weights``: an optional local torchvision vgg16 state dict (its classifier loads)."""

    def __init__(self, in_channels: int, resolution: int | Sequence[int], weights: str | None = None,
                 dropout: float = 0.5):
        super().__init__()
        height, width = grid(resolution)
        if (in_channels, height, width) != (512, 7, 7):
            raise ValueError(f"vgg_fc: needs 512-channel 7x7 RoIs (conv5_3, pooler output_size 7), "
                             f"got {in_channels} channels at {height}x{width}")
        full = vgg16(weights=None, dropout=dropout)
        load_weights(full, weights, "vgg_fc", "vgg16")
        if weights and not has_classifier(full):
            raise ValueError(f"vgg_fc: weights '{weights}' hold no classifier (NaN in fc6); name weights with one, "
                             "e.g. 'imagenet'")
        self.fc = full.classifier[:-1]  # drop the ImageNet classifier
        self.out_dim = 4096

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


@HEADS.register("resnet_c5")
class ResNetC5Head(nn.Module):
    """ResNet's last stage (res5, stride 2) and global average pooling on 14x14 RoIs of C4: the
    Faster R-CNN ResNet "C4" head. ``weights``: an optional local torchvision ResNet state dict.
    ``stride_in_1x1``: res5's stride in its first 1x1 conv (detectron2's weights)."""

    def __init__(self, in_channels: int, resolution: int | Sequence[int], depth: int = 50, weights: str | None = None,
                 norm: str = "frozen_bn", stride_in_1x1: bool = False):
        super().__init__()
        height, width = grid(resolution)
        if height != width:
            raise ValueError(f"resnet_c5: runs res5 on a square RoI map, got {height}x{width} (an spp pooler's flat "
                             "pyramid? use roi_align or roi_pool with it)")
        if depth not in _BOTTLENECK_RESNETS:
            raise ValueError(f"resnet_c5: depth must be one of {sorted(_BOTTLENECK_RESNETS)}, got {depth}")
        if in_channels != 1024:
            raise ValueError(f"resnet_c5: needs C4's 1024 channels, got {in_channels}")
        # Frozen by default: BatchNorm over a batch of overlapping RoIs would ruin ImageNet statistics.
        full = _BOTTLENECK_RESNETS[depth](weights=None, norm_layer=resnet_norm_layer(norm, "resnet_c5"))
        load_weights(full, weights, "resnet_c5", f"resnet{depth}")
        if stride_in_1x1:
            stride_into_1x1([full.layer4])
        self.res5 = full.layer4
        self.out_dim = 2048

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res5(x).mean(dim=(2, 3))


@HEADS.register("crop_cnn")
class CropCNNHead(nn.Module):
    """R-CNN's network on each warped crop (pooler ``warp`` on the ``image`` backbone): ``backbone`` (any
    registered one) on the crops, global average pooling of its last level, two fully connected layers. The crops
    go through in chunks of ``chunk`` to bound memory: R-CNN's cost is one network pass per proposal."""

    def __init__(self, in_channels: int, resolution: int | Sequence[int], backbone: Mapping, dim: int = 512,
                 chunk: int = 256):
        super().__init__()
        if in_channels != 3:
            raise ValueError(f"crop_cnn: classifies image crops (the image backbone's 3 channels), got {in_channels} "
                             "channels")
        self.cnn = BACKBONES.build(backbone)
        self.fc6 = nn.Linear(self.cnn.out_channels[-1], dim)
        self.fc7 = nn.Linear(dim, dim)
        self.out_dim, self.chunk = dim, int(chunk)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        pooled = [self.cnn(part)[-1].mean(dim=(2, 3)) for part in crops.split(self.chunk)] if len(crops) else \
            [crops.new_zeros(0, self.fc6.in_features)]
        return torch.relu(self.fc7(torch.relu(self.fc6(torch.cat(pooled)))))

