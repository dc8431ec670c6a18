"""Per-class NMS post-processing shared by every detector (SSD, RefineDet's ODM, the RoI head)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
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


def level_topk_nms(boxes: torch.Tensor, scores: torch.Tensor, level_counts: Sequence[int], score_threshold: float,
                   nms_threshold: float, max_detections: int, topk_per_level: int) -> dict[str, torch.Tensor]:
    """MMDetection's dense-head selection: per level, the ``topk_per_level`` best (prior, class) pairs scoring above
    the threshold, then per-class NMS over all levels and the ``max_detections`` best. boxes (A, 4), scores (A, C)."""
    num_classes = scores.shape[1]
    anchors, labels, kept_scores = [], [], []
    start = 0
    for count in level_counts:
        flat = scores[start:start + count].flatten()
        candidates = (flat > score_threshold).nonzero().squeeze(1)
        top, order = flat[candidates].topk(min(topk_per_level, candidates.numel()))
        chosen = candidates[order]
        anchors.append(chosen // num_classes + start)
        labels.append(chosen % num_classes)
        kept_scores.append(top)
        start += count
    anchor_idx, label, score = torch.cat(anchors), torch.cat(labels), torch.cat(kept_scores)
    cand_boxes = boxes[anchor_idx]
    kept = class_nms(cand_boxes.float(), score.float(), label, nms_threshold)[:max_detections]
    return {"boxes": cand_boxes[kept], "scores": score[kept], "labels": label[kept]}

