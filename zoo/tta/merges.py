"""Merges of the detections that several test-time views of one image produced, class by class.

Each is called with one image's boxes (N, 4), scores (N,) and labels (N,) and returns a dict of
``boxes``, ``scores``, ``labels``, best first. Box voting (RefineDet's multi-scale test) is greedy
NMS whose survivors take the score-weighted mean of the boxes they suppress (their cluster); the
clusters are found in one pass over an IoU matrix rather than box by box.

IoU is measured on continuous boxes (the zoo's convention), without the +1 on widths that the authors'
pixel-index code adds, and a box joins a cluster above the threshold, as torchvision's NMS suppresses.
"""
from __future__ import annotations

import torch
from torchvision.ops import batched_nms, box_iou

from zoo.ops.soft_nms import check_soft_nms_args, soft_nms
from zoo.registry import MERGES


def _result(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    order = scores.argsort(descending=True)
    return {"boxes": boxes[order], "scores": scores[order], "labels": labels[order]}


def _check_iou(name: str, iou_threshold: float, allow_one: bool = True) -> None:
    if not (0.0 < iou_threshold < 1.0 or (allow_one and iou_threshold == 1.0)):
        raise ValueError(f"{name} merge: iou_threshold must be in (0, 1{']' if allow_one else ')'}, got {iou_threshold}")


@MERGES.register("nms")
class NMSMerge:
    """Per-class NMS (torchvision's batched_nms)."""

    def __init__(self, iou_threshold: float = 0.45):
        _check_iou("nms", iou_threshold)
        self.iou_threshold = iou_threshold

    def __call__(self, boxes, scores, labels):
        keep = batched_nms(boxes.float(), scores.float(), labels, self.iou_threshold)
        return _result(boxes[keep], scores[keep], labels[keep])


@MERGES.register("soft_nms")
class SoftNMSMerge:
    """Per-class soft-NMS (``zoo.ops.soft_nms``): ``method`` gaussian or linear. ``merge_exponent`` (CornerNet's
    multi-scale test: 10) also moves each kept box to the weighted mean of itself and the near-duplicates it
    decays; None keeps the boxes as they are."""

    def __init__(self, method: str = "gaussian", sigma: float = 0.5, iou_threshold: float = 0.5,
                 score_threshold: float = 0.001, max_detections: int = 1000, merge_exponent: float | None = None):
        _check_iou("soft_nms", iou_threshold)
        check_soft_nms_args(method, sigma, max_detections, merge_exponent)  # at build time, before any model loads
        self.kwargs = {"method": method, "sigma": sigma, "iou_threshold": iou_threshold,
                       "score_threshold": score_threshold, "max_detections": max_detections,
                       "merge_exponent": merge_exponent}

    def __call__(self, boxes, scores, labels):
        keep, kept_scores, *merged = soft_nms(boxes.float(), scores.float(), labels, **self.kwargs)
        kept = merged[0].to(boxes.dtype) if merged else boxes[keep]
        return _result(kept, kept_scores.to(scores.dtype), labels[keep])


def vote_clusters(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor,
                  iou_threshold: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Greedy NMS survivors (``heads``) and, for every box, the head whose cluster it joins: the best
    surviving box of its class it overlaps above ``iou_threshold``: the one that suppressed it in the
    NMS; a survivor is its own. Returns (heads, cluster (N,) index into heads, iou (N,) with that head)."""
    heads = batched_nms(boxes.float(), scores.float(), labels, iou_threshold)  # best first
    same = labels[heads, None] == labels[None, :]
    iou = box_iou(boxes[heads].float(), boxes.float()).nan_to_num(0.0) * same  # zero-area boxes: 0/0
    joins = iou > iou_threshold
    # First (best) head taking the box; where NMS's own IoU arithmetic differed near the threshold and
    # none does, the same-class head it overlaps most.
    cluster = torch.where(joins.any(dim=0), joins.int().argmax(dim=0), iou.argmax(dim=0))
    cluster[heads] = torch.arange(len(heads), device=boxes.device)
    return heads, cluster, iou.gather(0, cluster[None]).squeeze(0)


@MERGES.register("box_voting")
class BoxVotingMerge:
    """Each NMS survivor becomes the score-weighted mean of its cluster's boxes and keeps its own
    (the cluster's best) score (RefineDet's VOC multi-scale test, IoU 0.45)."""

    def __init__(self, iou_threshold: float = 0.45):
        _check_iou("box_voting", iou_threshold, allow_one=False)  # at 1 no box could join another
        self.iou_threshold = iou_threshold

    def __call__(self, boxes, scores, labels):
        if boxes.numel() == 0:
            return _result(boxes, scores, labels)
        heads, cluster, _ = vote_clusters(boxes, scores, labels, self.iou_threshold)
        return _result(self._voted(boxes, scores, heads, cluster), scores[heads], labels[heads])

    @staticmethod
    def _voted(boxes, scores, heads, cluster):
        weights = scores.float()
        total = torch.zeros(len(heads), device=boxes.device).index_add_(0, cluster, weights)
        summed = torch.zeros(len(heads), 4, device=boxes.device).index_add_(0, cluster, boxes.float() * weights[:, None])
        return (summed / total.clamp(min=1e-12)[:, None]).to(boxes.dtype)


@MERGES.register("soft_box_voting")
class SoftBoxVotingMerge(BoxVotingMerge):
    """Box voting, and the other members of each cluster stay as well with their score times
    (1 - IoU with the survivor), dropped below ``score_threshold`` (RefineDet's COCO multi-scale test)."""

    def __init__(self, iou_threshold: float = 0.45, score_threshold: float = 0.01):
        super().__init__(iou_threshold)
        self.score_threshold = score_threshold

    def __call__(self, boxes, scores, labels):
        if boxes.numel() == 0:
            return _result(boxes, scores, labels)
        heads, cluster, iou = vote_clusters(boxes, scores, labels, self.iou_threshold)
        voted = self._voted(boxes, scores, heads, cluster)
        decayed = scores * (1 - iou)
        member = torch.ones_like(scores, dtype=torch.bool)
        member[heads] = False
        member &= decayed >= self.score_threshold
        return _result(torch.cat([voted, boxes[member]]), torch.cat([scores[heads], decayed[member]]),
                       torch.cat([labels[heads], labels[member]]))
