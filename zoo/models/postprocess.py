"""Per-class NMS post-processing shared by every detector (SSD, RefineDet's ODM, the RoI head)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from zoo.ops.class_nms import class_nms


def build_test_settings(test: Mapping[str, Any] | None, defaults: Mapping[str, Any],
                        node: str = "model.test") -> dict[str, Any]:
    """A model's settings ``node`` (``test`` by default) over its defaults; a misspelt key fails naming
    the accepted ones."""
    test = dict(test or {})
    unknown = sorted(set(test) - set(defaults))
    if unknown:
        raise ValueError(f"{node}: unknown key(s) {unknown}; accepted: {sorted(defaults)}")
    return {**defaults, **test}


def multiclass_nms(boxes: torch.Tensor, scores: torch.Tensor, score_threshold: float, nms_threshold: float,
                   max_detections: int, topk_per_class: int) -> dict[str, torch.Tensor]:
    """boxes (A, 4) shared by the classes or (A, C, 4) per class; scores (A, C) without background.

    Per class: keep the ``topk_per_class`` best anchors above the threshold, NMS each class
    (one batched call), then keep the ``max_detections`` best overall. No Python loop over classes."""
    num_anchors = scores.shape[0]
    k = min(topk_per_class, num_anchors)
    top_scores, top_idx = scores.topk(k, dim=0)  # (k, C)
    keep = top_scores > score_threshold
    anchor_idx = top_idx[keep]
    labels = keep.nonzero()[:, 1]
    cand_scores = top_scores[keep]
    cand_boxes = boxes[anchor_idx] if boxes.dim() == 2 else boxes[anchor_idx, labels]
    kept = class_nms(cand_boxes.float(), cand_scores.float(), labels, nms_threshold)[:max_detections]
    return {"boxes": cand_boxes[kept], "scores": cand_scores[kept], "labels": labels[kept]}
