"""Samplers: choose which matched anchors or RoIs a loss sees, per image.

Every sampler is called as ``sampler(labels, losses=None, boxes=None)`` with ``labels`` (N,): > 0 positive,
0 negative, < 0 ignored, and returns (positive indices, negative indices). A sampler whose
``needs_losses`` is true chooses by each candidate's current loss (N,), which the head computes without
gradient before sampling; the others ignore ``losses`` and ``boxes``. ``sample_masks`` applies any of them
to a batch of dense predictions (B, A), as the SSD and RefineDet losses need.
"""
from __future__ import annotations

import torch
from torchvision.ops import nms

from zoo.registry import SAMPLERS


def _check_quota(name: str, num: int, pos_fraction: float | None) -> None:
    if num <= 0 or (pos_fraction is not None and not 0.0 < pos_fraction <= 1.0):
        raise ValueError(f"{name} sampler: need num > 0 and 0 < pos_fraction <= 1, got {num}, {pos_fraction}")


@SAMPLERS.register("random")
class RandomSampler:
    """Up to ``num * pos_fraction`` positives at random, then negatives at random to fill ``num``
    (Faster R-CNN: RPN 256 at up to 1:1, RoI head 128 or 512 at 25% foreground)."""

    needs_losses = False

    def __init__(self, num: int = 256, pos_fraction: float = 0.5):
        _check_quota("random", num, pos_fraction)
        self.num = num
        self.pos_fraction = pos_fraction

    def __call__(self, labels: torch.Tensor, losses: torch.Tensor | None = None,
                 boxes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        positive = torch.nonzero(labels > 0).squeeze(1)
        negative = torch.nonzero(labels == 0).squeeze(1)
        num_pos = min(positive.numel(), int(self.num * self.pos_fraction))
        num_neg = min(negative.numel(), self.num - num_pos)
        positive = positive[torch.randperm(positive.numel(), device=labels.device)[:num_pos]]
        negative = negative[torch.randperm(negative.numel(), device=labels.device)[:num_neg]]
        return positive, negative


@SAMPLERS.register("ohem")
class OHEMSampler:
    """Online hard example mining (Shrivastava et al., 2016): the ``num`` candidates with the highest
    current loss. ``pos_fraction: null`` (the paper) ranks positives and negatives together;
    a number keeps the random sampler's quota and takes the hardest within each part.
    ``nms_threshold`` (the paper's 0.7) first suppresses candidates overlapping a harder one, so that
    near-duplicate boxes do not fill the batch with one loss counted many times; it needs ``boxes``.
    Only the ``nms_pool`` x ``num`` hardest enter that NMS: an RPN has tens of thousands of anchors."""

    needs_losses = True

    def __init__(self, num: int = 128, pos_fraction: float | None = None, nms_threshold: float | None = 0.7,
                 nms_pool: int = 16):
        _check_quota("ohem", num, pos_fraction)
        if nms_pool < 1:
            raise ValueError(f"ohem sampler: nms_pool must be >= 1, got {nms_pool}")
        self.nms_pool = nms_pool
        if nms_threshold is not None and not 0.0 < nms_threshold <= 1.0:
            raise ValueError(f"ohem sampler: nms_threshold must be in (0, 1] or null, got {nms_threshold}")
        self.num = num
        self.pos_fraction = pos_fraction
        self.nms_threshold = nms_threshold

    def __call__(self, labels: torch.Tensor, losses: torch.Tensor | None = None,
                 boxes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if losses is None or losses.shape != labels.shape:
            raise ValueError("ohem sampler: needs one loss per candidate "
                             f"(labels {tuple(labels.shape)}, losses {None if losses is None else tuple(losses.shape)})")
        candidates = torch.nonzero(labels >= 0).squeeze(1)
        losses = losses.detach().float()
        candidates = candidates[losses[candidates].argsort(descending=True)]
        if self.nms_threshold is not None:
            if boxes is None:
                raise ValueError("ohem sampler: nms_threshold needs the candidates' boxes (or set it to null)")
            candidates = candidates[: self.nms_pool * self.num]
            candidates = candidates[nms(boxes[candidates].detach().float(), losses[candidates], self.nms_threshold)]
        # ``candidates`` is now hardest first.
        is_pos = labels[candidates] > 0
        if self.pos_fraction is None:
            chosen = candidates[: self.num]
            return chosen[labels[chosen] > 0], chosen[labels[chosen] == 0]
        positive = candidates[is_pos][: int(self.num * self.pos_fraction)]
        negative = candidates[~is_pos][: self.num - positive.numel()]
        return positive, negative


@SAMPLERS.register("hard_negative")
class HardNegativeSampler:
    """SSD's hard-negative mining (Liu et al., 2016): every positive, and the ``neg_pos_ratio`` x positives
    negatives of highest loss in the same image (at least ``min_negatives``, at most all of them)."""

    needs_losses = True

    def __init__(self, neg_pos_ratio: float = 3.0, min_negatives: int = 0):
        if neg_pos_ratio < 0 or min_negatives < 0:
            raise ValueError(f"hard_negative sampler: need neg_pos_ratio >= 0 and min_negatives >= 0, got "
                             f"{neg_pos_ratio}, {min_negatives}")
        self.neg_pos_ratio = neg_pos_ratio
        self.min_negatives = min_negatives

    def masks(self, labels: torch.Tensor, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every image of a batch at once: ``labels``, ``losses`` (B, A) -> positive and negative masks (B, A).
        Each negative's rank within its image comes from a double argsort."""
        positives, negatives = labels > 0, labels == 0
        ranked = losses.detach().masked_fill(~negatives, float("-inf"))
        rank = ranked.argsort(dim=1, descending=True).argsort(dim=1)
        quota = (positives.sum(dim=1) * self.neg_pos_ratio).long().clamp(min=self.min_negatives)
        quota = torch.minimum(quota, negatives.sum(dim=1))
        return positives, (rank < quota[:, None]) & negatives

    def __call__(self, labels: torch.Tensor, losses: torch.Tensor | None = None,
                 boxes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if losses is None or losses.shape != labels.shape:
            raise ValueError("hard_negative sampler: needs one loss per candidate")
        positives, negatives = self.masks(labels[None], losses[None])
        return torch.nonzero(positives[0]).squeeze(1), torch.nonzero(negatives[0]).squeeze(1)


def sample_masks(sampler, labels: torch.Tensor, losses: torch.Tensor | None = None,
                 boxes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Any sampler over a batch of dense predictions: ``labels`` (B, A), ``losses`` (B, A), ``boxes`` (B, A, 4)
    or None -> the chosen positives' and negatives' masks (B, A). A sampler with a batched ``masks`` method
    (hard_negative) runs once; the others run image by image."""
    if hasattr(sampler, "masks"):
        return sampler.masks(labels, losses)
    positives, negatives = torch.zeros_like(labels, dtype=torch.bool), torch.zeros_like(labels, dtype=torch.bool)
    for i in range(labels.shape[0]):
        pos, neg = sampler(labels[i], None if losses is None else losses[i], None if boxes is None else boxes[i])
        positives[i, pos], negatives[i, neg] = True, True
    return positives, negatives
