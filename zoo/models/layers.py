"""Small layers shared by several components."""
from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from zoo.models.weights import check_named, is_named, named_state_dict


class InputTooSmallError(ValueError):
    """An input below the smallest size a model can run (SSD's extra layers need 3x3 maps): callers
    that try several sizes, such as a TTA comparison, can skip that size and keep the others."""


class L2Norm(nn.Module):
    """Channel-wise L2 normalisation with a learned per-channel scale (SSD's conv4_3 trick,
    RefineDet's conv4_3/conv5_3): keeps early, large-magnitude features comparable to later ones."""

    def __init__(self, channels: int, scale: float, eps: float = 1e-10):
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), float(scale)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = x.pow(2).sum(dim=1, keepdim=True).sqrt() + self.eps
        return x / norm * self.weight.view(1, -1, 1, 1)


def conv_block(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
               padding: int | None = None, norm: str = "none", dilation: int = 1, relu: bool = True) -> nn.Sequential:
    """conv (+ BatchNorm) (+ ReLU); ``norm`` is 'bn' or 'none'."""
    if norm not in ("bn", "none"):
        raise ValueError(f"norm must be 'bn' or 'none', got '{norm}'")
    padding = dilation * (kernel_size // 2) if padding is None else padding
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                                         dilation=dilation, bias=norm == "none")]
    if norm == "bn":
        layers.append(nn.BatchNorm2d(out_channels))
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def init_convs_from_scratch(module: nn.Module) -> None:
    """He (fan-out) initialisation of every conv: the backbones trained from scratch (no ImageNet weights)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def resnet_norm_layer(norm: str, what: str) -> type[nn.Module]:
    """``bn``: trainable BatchNorm (training from scratch); ``frozen_bn``: fixed statistics and affine
    (fine-tuning ImageNet weights with small per-device batches, torchvision's detection default)."""
    if norm not in ("bn", "frozen_bn"):
        raise ValueError(f"{what}: norm must be bn or frozen_bn, got '{norm}'")
    return FrozenBatchNorm2d if norm == "frozen_bn" else nn.BatchNorm2d


def load_weights(module: nn.Module, spec: str | None, what: str, arch: str | None = None) -> None:
    """Load pretrained weights into the torchvision model ``module`` (built by ``arch``: vgg16, resnet50...): a local
    state-dict file, or torchvision's weights by name (``imagenet``, an enum name; see zoo.models.weights) where
    ``arch`` is given."""
    if not spec:
        return
    if arch is not None and is_named(spec):
        if any(p.is_meta for p in module.parameters()):  # a preflight build: only check the name (and the cache)
            check_named(spec, arch, what)
            return
        state = named_state_dict(spec, arch, what)
        missing, unexpected = module.load_state_dict(state, strict=False)
        if unexpected or missing:
            raise ValueError(f"{what}: weights '{spec}' do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")
        return
    path = spec
    if Path(path).is_dir():
        raise ValueError(f"{what}: weights file '{path}' is a folder; name the state-dict file (.pt/.pth) in it")
    if any(p.is_meta for p in module.parameters()):  # a preflight build: only check the file is there
        if not Path(path).is_file():
            raise FileNotFoundError(f"{what}: weights file '{path}' not found")
        return
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{what}: weights file '{path}' not found") from err
    except OSError as err:  # there, but not readable (permissions, a device error): not a question of its format
        raise ValueError(f"{what}: weights file '{path}' cannot be read ({err.strerror or err})") from None
    except Exception as err:  # torch.load fails with any of a dozen types (EOFError, KeyError, RuntimeError, ...)
        why = _unloadable(path, err)
        raise ValueError(f"{what}: weights file '{path}' is not a torch state-dict file: {why}") from None
    if not isinstance(state, Mapping):
        raise ValueError(f"{what}: weights file '{path}' is not a torch state-dict file: it holds a "
                         f"{type(state).__name__}, not a dict of parameter names to tensors")
    missing, unexpected = module.load_state_dict(state, strict=False)
    if unexpected or missing:
        raise ValueError(f"{what}: weights '{path}' do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")


def _unloadable(path: str, err: Exception) -> str:
    """Why a file torch could not load is not a state dict, in a few words. torch's own message is left out: it
    runs over several lines and advises an unsafe load (weights_only=False), which would run any code the file
    holds."""
    if isinstance(err, pickle.UnpicklingError) and zipfile.is_zipfile(path):  # torch.save's archive, but not tensors
        return ("it holds pickled Python objects, not only tensors (a whole model saved with torch.save(model)?); "
                "save model.state_dict() instead")
    return "torch.load cannot read it (another format, or a file cut short or damaged)"


def stride_in_1x1(stages) -> None:
    """Move each stage's downsampling stride from the first bottleneck's 3x3 conv (torchvision) to its 1x1 conv (the
    original MSRA ResNets, whose weights detectron2 and Detectron publish). Same tensors, other features."""
    for stage in stages:
        first = stage[0]
        if first.conv2.stride != (1, 1):
            first.conv1.stride, first.conv2.stride = first.conv2.stride, (1, 1)


def has_classifier(vgg: nn.Module) -> bool:
    """Whether a torchvision vgg16's loaded weights include its classifier: VGG16_Weights.IMAGENET1K_FEATURES holds NaN
    there. A preflight build (meta tensors) is taken to have one."""
    weight = vgg.classifier[0].weight
    return weight.is_meta or bool(torch.isfinite(weight).all())

