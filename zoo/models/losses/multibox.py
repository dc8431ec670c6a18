"""SSD's multibox loss: softmax cross-entropy on the sampled anchors plus smooth L1 on the sampled positives."""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from zoo.registry import LOSSES, SAMPLERS
from zoo.task.samplers import sample_masks


@LOSSES.register("multibox")
class MultiBoxLoss:
    """Loss = (L_conf + alpha * L_loc) / N with N the sampled positives in the batch (0 when N = 0).

    ``labels`` (B, A): 0 background, 1..C foreground, -1 ignored. ``sampler`` chooses the anchors the loss
    sees from their current classification loss: SSD's and RefineDet's ``hard_negative`` (3 negatives per
    positive) by default; ``random`` or ``ohem`` (with ``nms_threshold: null``, as the loss has no boxes) swap
    in. ``exclude`` (B, A) removes negatives from sampling (RefineDet's negative anchor filtering)."""

    def __init__(self, loc_weight: float = 1.0, smooth_l1_beta: float = 1.0,
                 sampler: Mapping | None = None):
        self.loc_weight = loc_weight
        self.beta = smooth_l1_beta
        self.sampler = SAMPLERS.build(sampler or {"type": "hard_negative"})

    def __call__(self, scores: torch.Tensor, deltas: torch.Tensor, labels: torch.Tensor,
                 box_targets: torch.Tensor, exclude: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        ce = F.cross_entropy(scores.float().flatten(0, 1), labels.clamp(min=0).flatten(), reduction="none")
        ce = ce.view_as(labels)
        candidates = labels if exclude is None else labels.masked_fill(exclude & (labels == 0), -1)
        positives, negatives = sample_masks(self.sampler, candidates, ce.detach())
        normaliser = positives.sum().clamp(min=1).float()
        cls_loss = ce[positives | negatives].sum() / normaliser
        loc_loss = F.smooth_l1_loss(deltas[positives].float(), box_targets[positives], beta=self.beta,
                                    reduction="sum") / normaliser
        return {"cls": cls_loss, "loc": self.loc_weight * loc_loss}
