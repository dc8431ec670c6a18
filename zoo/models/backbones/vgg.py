"""VGG16 'reduced' (SSD, RefineDet): fc6/fc7 turned into an atrous 3x3 conv and a 1x1 conv."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torchvision.models import vgg16

from zoo.models.layers import L2Norm, has_classifier, load_weights
from zoo.registry import BACKBONES

# Indices into torchvision's vgg16().features, so its ImageNet weights load unchanged.
_POOL3, _CONV4_3_END, _CONV5_3_END = 16, 23, 30
_BLOCK_ENDS = (5, 10)  # conv1_x and conv2_x with their pools: the blocks ``frozen_blocks`` may fix


@BACKBONES.register("vgg16_reduced")
class VGG16Reduced(nn.Module):
    """Outputs any of ``conv4_3`` (stride 8), ``conv5_3`` (16) and ``fc7`` (``fc7_stride``), in that order.

    ``fc7_stride`` 16 is SSD's pool5 (3x3, stride 1) with conv6 dilated 6; 32 is RefineDet's pool5
    (2x2, stride 2) with conv6 dilated 3. ``atrous=false`` drops the dilation.
    ``l2norm`` maps a source to its initial L2Norm scale (SSD: conv4_3 20; RefineDet: conv4_3 10,
    conv5_3 8). ``weights`` is an optional local torchvision vgg16 state dict (ImageNet); fc6 and
    fc7 then start from its fully connected layers, subsampled.
    ``frozen_blocks`` (0-2) fixes conv1_x, or conv1_x and conv2_x: Faster R-CNN fine-tunes VGG16 from
    conv3_1 up (its Sec. 3.1.3), so its config sets 2."""

    SOURCES = ("conv4_3", "conv5_3", "fc7")
    CHANNELS = {"conv4_3": 512, "conv5_3": 512, "fc7": 1024}

    def __init__(self, sources: Sequence[str] = ("conv4_3", "fc7"), l2norm: Mapping[str, float] | None = None,
                 atrous: bool = True, fc7_stride: int = 16, weights: str | None = None, frozen_blocks: int = 0):
        super().__init__()
        if not 0 <= frozen_blocks <= len(_BLOCK_ENDS):
            raise ValueError(f"vgg16_reduced: frozen_blocks must be 0..{len(_BLOCK_ENDS)}, got {frozen_blocks}")
        unknown = [s for s in sources if s not in self.SOURCES]
        if unknown:
            raise ValueError(f"vgg16_reduced: unknown sources {unknown}; choose from {list(self.SOURCES)}")
        self.sources = [s for s in self.SOURCES if s in sources]
        full = vgg16(weights=None)
        load_weights(full, weights, "vgg16_reduced", "vgg16")  # a whole torchvision vgg16 state dict (ImageNet)
        features = full.features
        features[_POOL3].ceil_mode = True  # 75 -> 38 at 300 px, as in SSD
        self.to_conv4_3 = features[:_CONV4_3_END]
        if frozen_blocks:
            features[:_BLOCK_ENDS[frozen_blocks - 1]].requires_grad_(False)
        self.to_conv5_3 = features[_CONV4_3_END:_CONV5_3_END]
        if fc7_stride not in (16, 32):
            raise ValueError(f"vgg16_reduced: fc7_stride must be 16 (SSD) or 32 (RefineDet), got {fc7_stride}")
        pool5 = nn.MaxPool2d(3, stride=1, padding=1) if fc7_stride == 16 else nn.MaxPool2d(2, stride=2, ceil_mode=True)
        dilation = (6 if fc7_stride == 16 else 3) if atrous else 1
        self.to_fc7 = nn.Sequential(
            pool5,
            nn.Conv2d(512, 1024, 3, padding=dilation, dilation=dilation), nn.ReLU(inplace=True),
            nn.Conv2d(1024, 1024, 1), nn.ReLU(inplace=True),
        ) if "fc7" in self.sources else None  # Faster R-CNN stops at conv5_3
        # VGG16_Weights.IMAGENET1K_FEATURES holds NaN in its classifier: fc6/fc7 then keep their initialisation
        if weights and self.to_fc7 is not None and has_classifier(full):
            _load_reduced_fc(self.to_fc7[1], self.to_fc7[3], full.classifier)
        l2norm = dict(l2norm or {})
        bad = [k for k in l2norm if k not in self.sources]
        if bad:
            raise ValueError(f"vgg16_reduced: l2norm names {bad}, which are not among the sources {self.sources}")
        self.norms = nn.ModuleDict({k: L2Norm(self.CHANNELS[k], v) for k, v in l2norm.items()})
        self.out_channels = [self.CHANNELS[s] for s in self.sources]
        strides = {"conv4_3": 8, "conv5_3": 16, "fc7": fc7_stride}
        self.strides = [strides[s] for s in self.sources]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = {}
        outs["conv4_3"] = x = self.to_conv4_3(x)
        outs["conv5_3"] = x = self.to_conv5_3(x)
        if self.to_fc7 is not None:
            outs["fc7"] = self.to_fc7(x)
        return [self.norms[s](outs[s]) if s in self.norms else outs[s] for s in self.sources]


@torch.no_grad()
def _load_reduced_fc(fc6: nn.Conv2d, fc7: nn.Conv2d, classifier: nn.Sequential) -> None:
    """fc6/fc7 from ImageNet's fully connected layers by decimation, as SSD and RefineDet initialise
    them: every 4th of the 4096 units, and fc6's 7x7 taps at rows and columns 0, 3, 6 (a 3x3 kernel
    that the dilation spreads back over roughly the original field)."""
    full6, full7 = classifier[0], classifier[3]  # Linear(512*7*7, 4096), Linear(4096, 4096)
    fc6.weight.copy_(full6.weight.view(4096, 512, 7, 7)[::4, :, ::3, ::3])
    fc6.bias.copy_(full6.bias[::4])
    fc7.weight.copy_(full7.weight[::4, ::4].view(1024, 1024, 1, 1))
    fc7.bias.copy_(full7.bias[::4])
