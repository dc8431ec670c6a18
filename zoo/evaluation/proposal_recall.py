"""Average recall of region proposals (FPN Table 1's AR@100 / AR@1k), class-agnostic.

Hand-written: pycocotools scores detections, not ranked proposal lists cut at several lengths.
Follows the common definition (Hosang et al.; Detectron's proposal evaluation): per image, proposals
and ground truths are paired one to one greedily by highest IoU; recall at IoU t is the share of
ground truths whose pair reaches t; AR is its mean over t = 0.50, 0.55, ..., 0.95.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.ops import box_iou

IOU_THRESHOLDS = torch.arange(0.5, 0.951, 0.05)


def best_pair_overlaps(proposals: torch.Tensor, gt_boxes: torch.Tensor) -> torch.Tensor:
    """(G,) IoU each ground truth gets when pairs are taken greedily, best first (0 if none left)."""
    covered = torch.zeros(gt_boxes.shape[0])
    if gt_boxes.numel() == 0 or proposals.numel() == 0:
        return covered
    iou = box_iou(gt_boxes.float(), proposals.float()).cpu()
    for _ in range(min(iou.shape)):
        best = int(iou.argmax())
        g, p = divmod(best, iou.shape[1])
        if iou[g, p] < 0:
            break
        covered[g] = iou[g, p]
        iou[g, :] = -1.0
        iou[:, p] = -1.0
    return covered


def average_recall(proposals: Sequence[torch.Tensor], gt_boxes: Sequence[torch.Tensor],
                   limits: Sequence[int] = (100, 1000)) -> dict[str, float]:
    """``proposals``: per image (N, 4) ranked best first; ``gt_boxes``: per image (G, 4), ignored
    boxes already removed. Returns ``ar@N`` per limit, and the recall at IoU 0.5 and 0.7."""
    results = {}
    for limit in limits:
        covered = torch.cat([best_pair_overlaps(p[:limit], g) for p, g in zip(proposals, gt_boxes)])
        if covered.numel() == 0:
            raise ValueError("average_recall: no ground-truth boxes")
        recalls = (covered[None, :] >= IOU_THRESHOLDS[:, None] - 1e-6).float().mean(dim=1)
        results[f"ar@{limit}"] = recalls.mean().item()
        results[f"recall@{limit}_iou0.5"] = recalls[0].item()
        results[f"recall@{limit}_iou0.7"] = recalls[4].item()
    return results
