"""Samplers: choose which matched anchors or RoIs a loss sees, per image."""
from __future__ import annotations

import torch

from zoo.registry import SAMPLERS


@SAMPLERS.register("random")
class RandomSampler:
    """Up to ``num * pos_fraction`` positives at random, then negatives at random to fill ``num``
    (Faster R-CNN: RPN 256 at up to 1:1, RoI head 128 or 512 at 25% foreground)."""

    def __init__(self, num: int = 256, pos_fraction: float = 0.5):
        if num <= 0 or not 0.0 < pos_fraction <= 1.0:
            raise ValueError(f"random sampler: need num > 0 and 0 < pos_fraction <= 1, got {num}, {pos_fraction}")
        self.num = num
        self.pos_fraction = pos_fraction

    def __call__(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``labels`` (N,): > 0 positive, 0 negative, < 0 ignored. Returns positive and negative indices."""
        positive = torch.nonzero(labels > 0).squeeze(1)
        negative = torch.nonzero(labels == 0).squeeze(1)
        num_pos = min(positive.numel(), int(self.num * self.pos_fraction))
        num_neg = min(negative.numel(), self.num - num_pos)
        positive = positive[torch.randperm(positive.numel(), device=labels.device)[:num_pos]]
        negative = negative[torch.randperm(negative.numel(), device=labels.device)[:num_neg]]
        return positive, negative
