"""Load other libraries' detector weights into zoo models (local files only: no downloads)."""
from __future__ import annotations

import re

import torch

_TORCHVISION_SSD_RULES = [
    (r"backbone\.scale_weight", lambda m: "backbone.norms.conv4_3.weight"),
    (r"backbone\.features\.(\d+)\.(\w+)", lambda m: f"backbone.to_conv4_3.{m[1]}.{m[2]}"),
    (r"backbone\.extra\.0\.7\.(\d+)\.(\w+)", lambda m: f"backbone.to_fc7.{m[1]}.{m[2]}"),
    (r"backbone\.extra\.0\.(\d+)\.(\w+)", lambda m: f"backbone.to_conv5_3.{23 + int(m[1])}.{m[2]}"),
    (r"backbone\.extra\.(\d+)\.(\d+)\.(\w+)",
     lambda m: f"neck.extras.{int(m[1]) - 1}.{int(m[2]) // 2}.0.{m[3]}"),
    (r"head\.classification_head\.module_list\.(\d+)\.(\w+)", lambda m: f"head.cls.{m[1]}.{m[2]}"),
    (r"head\.regression_head\.module_list\.(\d+)\.(\w+)", lambda m: f"head.box.{m[1]}.{m[2]}"),
]


def ssd_from_torchvision(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a torchvision ``ssd300_vgg16`` state dict to zoo's ``ssd300`` layout.

    Both keep class 0 as background in the classification convs, so the tensors carry over as
    they are; zoo labels come out as torchvision's minus one."""
    out = {}
    for key, value in state.items():
        for pattern, rename in _TORCHVISION_SSD_RULES:
            match = re.fullmatch(pattern, key)
            if match:
                out[rename(match)] = value
                break
        else:
            raise KeyError(f"ssd_from_torchvision: no rule for torchvision key '{key}'")
    return out
