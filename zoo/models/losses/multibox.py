"""SSD's multibox loss: softmax cross-entropy with hard-negative mining plus smooth L1 on positives."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from zoo.registry import LOSSES


def hard_negative_mask(neg_loss: torch.Tensor, negatives: torch.Tensor, num_pos: torch.Tensor,
                       neg_pos_ratio: float, min_negatives: int = 0) -> torch.Tensor:
    """Per image, keep the ``neg_pos_ratio * num_pos`` highest-loss candidates among ``negatives``.

    neg_loss, negatives: (B, A); num_pos: (B,). Vectorised: rank by a double argsort."""
    loss = neg_loss.detach().masked_fill(~negatives, float("-inf"))
    order = loss.argsort(dim=1, descending=True)
    rank = order.argsort(dim=1)
    quota = (num_pos * neg_pos_ratio).long().clamp(min=min_negatives)
    quota = torch.minimum(quota, negatives.sum(dim=1))
    return (rank < quota[:, None]) & negatives


@LOSSES.register("multibox")
class MultiBoxLoss:
    """Loss = (L_conf + alpha * L_loc) / N with N the matched anchors in the batch (0 when N = 0).

    ``labels`` (B, A): 0 background, 1..C foreground, -1 ignored. ``exclude`` (B, A) removes
    anchors from hard-negative mining only (RefineDet's negative anchor filtering)."""

    def __init__(self, neg_pos_ratio: float = 3.0, loc_weight: float = 1.0, min_negatives: int = 0,
                 smooth_l1_beta: float = 1.0):
        self.neg_pos_ratio = neg_pos_ratio
        self.loc_weight = loc_weight
        self.min_negatives = min_negatives
        self.beta = smooth_l1_beta

    def __call__(self, scores: torch.Tensor, deltas: torch.Tensor, labels: torch.Tensor,
                 box_targets: torch.Tensor, exclude: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        positives = labels > 0
        negatives = labels == 0
        if exclude is not None:
            negatives &= ~exclude
        num_pos = positives.sum(dim=1)
        ce = F.cross_entropy(scores.float().flatten(0, 1), labels.clamp(min=0).flatten(), reduction="none")
        ce = ce.view_as(labels)
        mined = hard_negative_mask(ce, negatives, num_pos, self.neg_pos_ratio, self.min_negatives)
        normaliser = num_pos.sum().clamp(min=1).float()
        cls_loss = ce[positives | mined].sum() / normaliser
        loc_loss = F.smooth_l1_loss(deltas[positives].float(), box_targets[positives], beta=self.beta,
                                    reduction="sum") / normaliser
        return {"cls": cls_loss, "loc": self.loc_weight * loc_loss}
