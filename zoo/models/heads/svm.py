"""R-CNN's per-class linear SVMs on the RoI head's features: one-vs-rest scores trained with the squared hinge loss
(the L2-loss SVM that liblinear solves for R-CNN; its regulariser is the optimizer's weight decay) on hard negatives
mined per batch. Hand-written: no library trains SVMs inside a torch training loop."""
from __future__ import annotations

import torch
from torch import nn


class ClassSVMs(nn.Module):
    """``negative_iou``: proposals overlapping every ground truth less than this are negatives (R-CNN: 0.3; the
    ground truths themselves are the positives); ``negatives``: how many such proposals per image are scored;
    ``hard``: per class, the highest-scoring negatives of the batch that enter the loss (hard-negative mining)."""

    def __init__(self, dim: int, num_classes: int, negative_iou: float = 0.3, negatives: int = 128, hard: int = 64):
        super().__init__()
        if not 0.0 < negative_iou <= 0.5 or negatives < 1 or hard < 1:
            raise ValueError(f"roi_box_head.svm: negative_iou must be in (0, 0.5], negatives and hard >= 1; got "
                             f"{negative_iou}, {negatives}, {hard}")
        self.linear = nn.Linear(dim, num_classes)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        self.negative_iou, self.negatives, self.hard = float(negative_iou), int(negatives), int(hard)

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        return self.linear(vectors)

    def loss(self, vectors: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``labels``: per row its class (a ground truth, positive for it) or -1 (a negative proposal). Each row is a
        negative for every class it is not; per class only the ``hard`` highest-scoring negatives count."""
        scores = self(vectors.float())
        positive = labels[:, None] == torch.arange(scores.shape[1], device=labels.device)[None]
        positives = (1 - scores).clamp(min=0).pow(2)[positive]
        negative_scores = scores.masked_fill(positive, float("-inf"))
        hardest = negative_scores.topk(min(self.hard, scores.shape[0]), dim=0).values
        negatives = (1 + hardest).clamp(min=0).pow(2)[torch.isfinite(hardest)]
        return (positives.sum() + negatives.sum()) / max(positives.numel() + negatives.numel(), 1)
