"""Per-class NMS post-processing shared by the dense detectors (SSD, RefineDet's ODM)."""
from __future__ import annotations

import torch
from torchvision.ops import batched_nms


def multiclass_nms(boxes: torch.Tensor, scores: torch.Tensor, score_threshold: float, nms_threshold: float,
                   max_detections: int, topk_per_class: int) -> dict[str, torch.Tensor]:
    """boxes (A, 4) shared by the classes, scores (A, C) without background.

    Per class: keep the ``topk_per_class`` best anchors above the threshold, NMS each class
    (one batched call), then keep the ``max_detections`` best overall. No Python loop over classes."""
    num_anchors, num_classes = scores.shape
    k = min(topk_per_class, num_anchors)
    top_scores, top_idx = scores.topk(k, dim=0)  # (k, C)
    keep = top_scores > score_threshold
    anchor_idx = top_idx[keep]
    labels = keep.nonzero()[:, 1]
    cand_scores = top_scores[keep]
    cand_boxes = boxes[anchor_idx]
    kept = batched_nms(cand_boxes.float(), cand_scores.float(), labels, nms_threshold)[:max_detections]
    return {"boxes": cand_boxes[kept], "scores": cand_scores[kept], "labels": labels[kept]}
