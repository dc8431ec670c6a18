"""Per-class NMS that also exports.

torchvision's ``batched_nms`` branches on how many boxes it gets (empty, or over 4,000 on CPU: one NMS per
class), which ``torch.export`` cannot trace when that number depends on the image. While exporting, the
classes are kept apart by offsetting each class's boxes beyond all others (the same result in one NMS call),
with no branch; otherwise torchvision's call, whose per-class loop is faster on many boxes.
"""
from __future__ import annotations

import torch
from torchvision.ops import batched_nms, nms


def class_nms(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices of the boxes kept, by decreasing score; boxes of different ``classes`` never suppress each other."""
    if not torch.compiler.is_exporting():
        return batched_nms(boxes, scores, classes, iou_threshold)
    coords = torch.cat([boxes.flatten(), boxes.new_zeros(1)])  # the zero: an empty input needs no branch
    extent = coords.max() - coords.min() + 1  # wider than every box, negative coordinates included
    shifted = boxes + (classes.to(boxes) * extent)[:, None]
    return nms(shifted, scores, iou_threshold)
