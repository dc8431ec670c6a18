"""Matchers: assign each anchor to a ground-truth box, to background, or to 'ignore'."""
from __future__ import annotations

import torch
from torchvision.ops import box_iou

from zoo.ops.greedy_pairs import greedy_pairs
from zoo.registry import MATCHERS

BACKGROUND = -1
IGNORE = -2


@MATCHERS.register("max_iou")
class MaxIoUMatcher:
    """Max-IoU assignment with a positive and a negative threshold.

    ``low_quality`` decides how every ground truth keeps at least one anchor: ``best`` gives each its
    single best anchor, a later one winning an anchor two share (ssd.pytorch's port); ``bipartite`` pairs
    them one to one, highest IoU first, so the loser of a shared anchor takes its next best (the SSD and
    RefineDet Caffe releases' bipartite matching); ``ties`` gives each every anchor tied at its best IoU
    (Faster R-CNN's RPN); ``none`` leaves a ground truth that no anchor reaches unmatched.
    Anchors between the thresholds are ignored; anchors whose best overlap is an ignored ground
    truth (VOC difficult, COCO crowd) are ignored rather than called background. ``bg_min_iou``
    ignores background below it too (Fast R-CNN samples background RoIs from IoU [0.1, 0.5)).
    """

    def __init__(self, pos_iou: float = 0.5, neg_iou: float | None = None, low_quality: str = "best",
                 bg_min_iou: float = 0.0):
        if low_quality not in ("best", "bipartite", "ties", "none"):
            raise ValueError(f"max_iou matcher: low_quality must be best, bipartite, ties or none, got '{low_quality}'")
        self.pos_iou = pos_iou
        self.neg_iou = pos_iou if neg_iou is None else neg_iou
        if self.neg_iou > self.pos_iou:
            raise ValueError(f"max_iou matcher: neg_iou {self.neg_iou} exceeds pos_iou {self.pos_iou}")
        self.low_quality = low_quality
        self.bg_min_iou = bg_min_iou

    def __call__(self, anchors: torch.Tensor, gt_boxes: torch.Tensor, gt_ignore: torch.Tensor | None = None,
                 valid: torch.Tensor | None = None) -> torch.Tensor:
        """Return (num_anchors,) long: a ground-truth index, BACKGROUND or IGNORE. Anchors outside
        ``valid`` (A,) bool are IGNORE and never chosen, not even as a ground truth's best."""
        matched = torch.full((anchors.shape[0],), BACKGROUND, dtype=torch.long, device=anchors.device)
        if valid is not None:
            matched[~valid] = IGNORE
        if gt_boxes.numel() == 0:
            return matched
        iou = box_iou(gt_boxes, anchors)  # (G, A)
        if valid is not None:
            iou = iou.masked_fill(~valid[None], -1.0)
        if gt_ignore is not None and gt_ignore.any():
            ignored_iou = iou[gt_ignore].amax(dim=0)
            iou = iou.masked_fill(gt_ignore[:, None], -1.0)
        else:
            ignored_iou = None
        best_iou, best_gt = iou.max(dim=0)
        matched = torch.where(best_iou >= self.pos_iou, best_gt, matched)
        matched[(best_iou >= self.neg_iou) & (best_iou < self.pos_iou)] = IGNORE
        if self.bg_min_iou > 0:
            matched[best_iou < self.bg_min_iou] = IGNORE
        if ignored_iou is not None:
            matched[(matched == BACKGROUND) & (ignored_iou >= self.neg_iou)] = IGNORE
        if valid is not None:
            matched[~valid] = IGNORE
        self._keep_low_quality(iou, matched, gt_ignore)
        return matched

    def _keep_low_quality(self, iou: torch.Tensor, matched: torch.Tensor, gt_ignore: torch.Tensor | None) -> None:
        if self.low_quality == "none":
            return
        valid = torch.ones(iou.shape[0], dtype=torch.bool, device=iou.device) if gt_ignore is None else ~gt_ignore
        gt_best_iou, gt_best_anchor = iou.max(dim=1)
        valid &= gt_best_iou > 0
        if self.low_quality == "best" or (self.low_quality == "bipartite" and _distinct(gt_best_anchor[valid])):
            # Later ground truths win a shared anchor, like a plain loop over ground truths would.
            gts = torch.nonzero(valid).squeeze(1)
            matched[gt_best_anchor[gts]] = gts
        elif self.low_quality == "bipartite":
            # The rare image where two ground truths share a best anchor: pair them all one to one instead.
            gts, anchors = greedy_pairs(iou.masked_fill(~valid[:, None], -1.0))
            matched[anchors] = gts
        else:
            _, anchor_idx = torch.nonzero((iou == gt_best_iou[:, None]) & valid[:, None], as_tuple=True)
            matched[anchor_idx] = iou[:, anchor_idx].argmax(dim=0)


def _distinct(values: torch.Tensor) -> bool:
    return values.unique().numel() == values.numel()

