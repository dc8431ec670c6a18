"""Box coders: turn (box, anchor) pairs into regression targets and back."""
from __future__ import annotations

import math

import torch

from zoo.registry import CODERS


def _centre_form(boxes: torch.Tensor) -> tuple[torch.Tensor, ...]:
    w = boxes[..., 2] - boxes[..., 0]
    h = boxes[..., 3] - boxes[..., 1]
    return boxes[..., 0] + 0.5 * w, boxes[..., 1] + 0.5 * h, w, h


@CODERS.register("delta_xywh")
class DeltaXYWHCoder:
    """Centre offsets scaled by anchor size and log size ratios, divided by ``variances``.

    SSD and RefineDet call the divisors variances (0.1, 0.2); Faster R-CNN calls them target stds
    (0.1, 0.1, 0.2, 0.2). Both are this coder.
    """

    def __init__(self, variances: tuple[float, ...] | list[float] = (0.1, 0.1, 0.2, 0.2),
                 max_log_ratio: float = math.log(1000.0 / 16)):
        if len(variances) == 2:
            variances = (variances[0], variances[0], variances[1], variances[1])
        if len(variances) != 4:
            raise ValueError(f"delta_xywh: variances must have 2 or 4 values, got {list(variances)}")
        self.variances = tuple(float(v) for v in variances)
        # Bounds exp() both ways: finite boxes for wild early predictions, and never a zero-size
        # box (RefineDet matches and encodes against its own decoded anchors).
        self.max_log_ratio = max_log_ratio

    def encode(self, boxes: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        bx, by, bw, bh = _centre_form(boxes)
        ax, ay, aw, ah = _centre_form(anchors)
        vx, vy, vw, vh = self.variances
        return torch.stack(
            [(bx - ax) / aw / vx, (by - ay) / ah / vy, torch.log(bw / aw) / vw, torch.log(bh / ah) / vh], dim=-1
        )

    def decode(self, deltas: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        ax, ay, aw, ah = _centre_form(anchors)
        vx, vy, vw, vh = self.variances
        cx = ax + deltas[..., 0] * vx * aw
        cy = ay + deltas[..., 1] * vy * ah
        w = aw * torch.exp((deltas[..., 2] * vw).clamp(-self.max_log_ratio, self.max_log_ratio))
        h = ah * torch.exp((deltas[..., 3] * vh).clamp(-self.max_log_ratio, self.max_log_ratio))
        return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)
