"""Turn matcher output into per-anchor training targets (shared by every anchor-based head)."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from zoo.task.matchers import IGNORE


def assign_image(anchors: torch.Tensor, target: dict[str, torch.Tensor], matcher, coder, binary: bool = False,
                 valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One image's (A, 4) anchors (or RoI candidates) against its ground truth: ``labels`` (A,) long —
    0 background, 1..C the class + 1 (1 for every object when ``binary``), -1 ignored — and
    ``box_targets`` (A, 4) encoded against the anchors (zero where not positive)."""
    matched = matcher(anchors, target["boxes"], target.get("ignore"), valid)
    positive = matched >= 0
    gt_idx = matched.clamp(min=0)
    if target["boxes"].numel():
        cls = torch.ones_like(matched) if binary else target["labels"][gt_idx] + 1
        boxes = target["boxes"][gt_idx]
    else:
        cls = torch.zeros_like(matched)
        boxes = anchors
    label = torch.where(positive, cls, torch.zeros_like(matched))
    label[matched == IGNORE] = -1  # BACKGROUND anchors keep label 0
    encoded = coder.encode(boxes, anchors)
    return label, torch.where(positive[:, None], encoded, torch.zeros_like(encoded))


def assign_targets(anchors: torch.Tensor, targets: Sequence[dict[str, torch.Tensor]], matcher, coder,
                   binary: bool = False, valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """anchors: (A, 4) shared or (B, A, 4) per image (refined anchors); ``valid`` (A,) or (B, A) marks
    the anchors that may be matched at all (the RPN leaves out those crossing the image's border).
    Returns ``labels`` (B, A) and ``box_targets`` (B, A, 4) as ``assign_image`` makes them."""
    per_image = anchors.dim() == 3
    pairs = [assign_image(anchors[i] if per_image else anchors, target, matcher, coder, binary,
                          valid[i] if valid is not None and valid.dim() == 2 else valid)
             for i, target in enumerate(targets)]
    labels, box_targets = zip(*pairs) if pairs else ((), ())
    return torch.stack(labels), torch.stack(box_targets)
