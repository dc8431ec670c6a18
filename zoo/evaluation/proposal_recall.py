"""Average recall of region proposals (FPN Table 1's AR@100 / AR@1k and AR_s / AR_m / AR_l at 1k), class-agnostic.

Hand-written: pycocotools scores detections, not ranked proposal lists cut at several lengths.
Follows the common definition (Hosang et al.; Detectron's proposal evaluation): per image, proposals
and ground truths are paired one to one greedily by highest IoU; recall at IoU t is the share of
ground truths whose pair reaches t; AR is its mean over t = 0.50, 0.55, ..., 0.95. AR by object size
pairs the proposals with the ground truths of that size only (COCO's areas: up to 32², 32² to 96², from 96²).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchvision.ops import box_iou

from zoo.evaluation.base import Evaluator
from zoo.evaluation.coco_format import AREA_RANGES, in_area_range
from zoo.ops.greedy_pairs import greedy_pairs
from zoo.registry import EVALUATORS

IOU_THRESHOLDS = torch.arange(0.5, 0.951, 0.05)


def best_pair_overlaps(proposals: torch.Tensor, gt_boxes: torch.Tensor) -> torch.Tensor:
    """(G,) IoU each ground truth gets when pairs are taken greedily, best first (0 if none left)."""
    covered = torch.zeros(gt_boxes.shape[0])
    if gt_boxes.numel() == 0 or proposals.numel() == 0:
        return covered
    iou = box_iou(gt_boxes.float(), proposals.float()).cpu()
    gts, taken = greedy_pairs(iou)
    covered[gts] = iou[gts, taken]
    return covered


def _recalls(covered: torch.Tensor) -> torch.Tensor:
    """Recall at each IoU threshold, from each ground truth's paired IoU."""
    return (covered[None, :] >= IOU_THRESHOLDS[:, None] - 1e-6).float().mean(dim=1)


def average_recall(proposals: Sequence[torch.Tensor], gt_boxes: Sequence[torch.Tensor],
                   limits: Sequence[int] = (100, 1000),
                   gt_areas: Sequence[torch.Tensor] | None = None) -> dict[str, float]:
    """``proposals``: per image (N, 4) ranked best first; ``gt_boxes``: per image (G, 4), ignored
    boxes already removed. Returns ``ar@N`` per limit, and the recall at IoU 0.5 and 0.7; with ``gt_areas``
    (per image (G,)) also ``ar@N_small`` / ``_medium`` / ``_large`` at the largest limit (NaN for a size
    with no ground truth)."""
    results = {}
    for limit in limits:
        covered = torch.cat([best_pair_overlaps(p[:limit], g) for p, g in zip(proposals, gt_boxes)])
        if covered.numel() == 0:
            raise ValueError("average_recall: no ground-truth boxes")
        recalls = _recalls(covered)
        results[f"ar@{limit}"] = recalls.mean().item()
        results[f"recall@{limit}_iou0.5"] = recalls[0].item()
        results[f"recall@{limit}_iou0.7"] = recalls[4].item()
    if gt_areas is not None:
        limit = max(limits)
        for size in AREA_RANGES:
            covered = torch.cat([best_pair_overlaps(p[:limit], g[in_area_range(a, size)])
                                 for p, g, a in zip(proposals, gt_boxes, gt_areas)])
            results[f"ar@{limit}_{size}"] = _recalls(covered).mean().item() if covered.numel() else float("nan")
    return results


@EVALUATORS.register("proposal_recall")
class ProposalRecallEvaluator(Evaluator):
    """Scores a two-stage model's RPN proposals, not its detections (``source = 'proposals'``: the
    inference loop asks the model for up to ``max(limits)`` proposals per image). Metrics per limit N:
    ``rpn_ar<N>`` and the recall at IoU 0.5 and 0.7 (``rpn_recall<N>_iou50``, ``_iou70``), class-agnostic,
    ignored ground truths left out, and at the largest limit the AR by object size (``rpn_ar<N>_small``,
    ``_medium``, ``_large``: the source's object area, COCO's mask area, else the box's); the primary one is the
    AR at the largest limit."""

    source = "proposals"

    def __init__(self, class_names: Sequence[str], limits: Sequence[int] = (100, 1000)):
        if not limits or min(limits) < 1:
            raise ValueError(f"proposal_recall: limits must be positive proposal counts, got {list(limits)}")
        self.limits = sorted(int(n) for n in limits)
        self.max_proposals = self.limits[-1]
        self.primary_metric = f"rpn_ar{self.max_proposals}"
        self.table_columns = ("num_gt", *(f"ar@{n}" for n in self.limits))
        super().__init__(class_names)

    def evaluate(self) -> dict[str, Any]:
        ids = self.image_ids()
        proposals = [torch.from_numpy(self.prediction(i).boxes) for i in ids]
        gts = [torch.from_numpy(self.ground_truth(i).boxes[~self.ground_truth(i).ignore]) for i in ids]
        areas = [torch.from_numpy(self.ground_truth(i).object_areas()[~self.ground_truth(i).ignore]) for i in ids]
        figures = average_recall(proposals, gts, self.limits, areas)
        metrics = {}
        for n in self.limits:
            metrics.update({f"rpn_ar{n}": figures[f"ar@{n}"], f"rpn_recall{n}_iou50": figures[f"recall@{n}_iou0.5"],
                            f"rpn_recall{n}_iou70": figures[f"recall@{n}_iou0.7"]})
        metrics.update({f"rpn_ar{self.max_proposals}_{size}": figures[f"ar@{self.max_proposals}_{size}"]
                        for size in AREA_RANGES})
        per_class = {"all objects": {"num_gt": int(sum(len(g) for g in gts)), **{f"ar@{n}": figures[f"ar@{n}"]
                                                                                 for n in self.limits}}}
        return {**metrics, "per_class": per_class}

    def plot(self, out_dir: str) -> list[str]:
        return []  # the figures are a few numbers; no curve is drawn

