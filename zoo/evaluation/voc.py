"""PASCAL VOC mean average precision (see voc_ap.py for the matching rules).

Conventions worth knowing:
  - Detections of a class are ranked by score over all images with a stable sort; ties keep the
    order (image_id ascending, then the order of the image's prediction list).
  - ``num_gt`` counts non-ignored ground truth only; ``num_det`` counts every detection of the
    class (including those that hit ignored ground truth); ``recall`` is the recall at the end
    of the ranked list.
  - mAP is the mean AP over the classes with at least one non-ignored ground-truth box. A class
    without any has AP NaN and is left out, rather than counted as 0 as the devkit does: a class
    that the evaluation split never shows says nothing about the detector. If no class has
    ground truth the mAP is NaN, with a warning.
"""
from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from zoo.evaluation.base import Evaluator, concat
from zoo.evaluation.plotting import plot_pr_grid
from zoo.evaluation.voc_ap import NO_MATCH, average_precision, match_to_ground_truth, precision_recall, true_positives
from zoo.registry import EVALUATORS


@EVALUATORS.register("voc")
class VOCEvaluator(Evaluator):
    table_columns = ("num_gt", "num_det", "recall", "ap")

    def format_table(self, results: Mapping[str, Any]) -> str:
        return super().format_table(results) + (
            "\n(objects: ground-truth boxes, ignored ones left out; detections: every box the model kept, down to its "
            "test score threshold, which AP ranks; recall: the share of objects some detection finds at IoU "
            f"{self.iou_threshold})")

    def __init__(self, class_names: Sequence[str], iou_threshold: float = 0.5, use_07_metric: bool = True):
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must lie in (0, 1], got {iou_threshold}")
        self.iou_threshold = float(iou_threshold)
        self.use_07_metric = bool(use_07_metric)
        # voc07_map50 for the 11-point metric at IoU 0.5, voc_map75 for the area metric at 0.75.
        self.primary_metric = f"{'voc07' if use_07_metric else 'voc'}_map{round(iou_threshold * 100)}"
        super().__init__(class_names)

    def reset(self) -> None:
        super().reset()
        self._curves: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
        self._per_class: dict[str, dict[str, Any]] | None = None

    def evaluate(self) -> dict[str, Any]:
        gt_ignore, det_labels, det_scores, matched = self._match_all()
        num_gt, num_det = self.class_counts()
        per_class, curves = {}, {}
        for c, name in enumerate(self.class_names):
            positives = int(num_gt[c])
            mine = np.flatnonzero(det_labels == c)
            is_tp = true_positives(det_scores[mine], matched[mine], gt_ignore)
            precision, recall = precision_recall(is_tp, positives)
            per_class[name] = {
                "ap": average_precision(precision, recall, self.use_07_metric) if positives else math.nan,
                "num_gt": positives,
                "num_det": int(num_det[c]),
                "recall": float(recall[-1]) if len(recall) else (0.0 if positives else math.nan),
            }
            curves[name] = (recall, precision)

        aps = [v["ap"] for v in per_class.values() if v["num_gt"]]
        if not aps:
            warnings.warn("VOC evaluation found no (non-ignored) ground truth; mAP is NaN", stacklevel=2)
        self._curves, self._per_class = curves, per_class
        return {self.primary_metric: float(np.mean(aps)) if aps else math.nan, "per_class": per_class}

    def plot(self, out_dir: str) -> list[str]:
        if self._curves is None:
            raise RuntimeError("call evaluate() before plot()")
        curves = {
            name: [(f"AP {self._per_class[name]['ap']:.3f}", recall, precision)]
            if len(recall) and self._per_class[name]["num_gt"] else []
            for name, (recall, precision) in self._curves.items()
        }
        title = f"{self.primary_metric}: precision-recall at IoU {self.iou_threshold:g}"
        return [plot_pr_grid(curves, os.path.join(out_dir, f"pr_{self.primary_metric}.png"), title)]

    def _match_all(self) -> tuple[np.ndarray, ...]:
        """Every image's detections matched to its ground truth; ground truth is numbered across
        images so that one index space serves all classes."""
        ids = self.image_ids()
        gts = [self.ground_truth(i) for i in ids]
        preds = [self.prediction(i) for i in ids]
        offsets = np.cumsum([0] + [len(g.labels) for g in gts])
        matched = []
        for gt, pred, offset in zip(gts, preds, offsets):
            m = match_to_ground_truth(pred.boxes, pred.labels, gt.boxes, gt.labels, self.iou_threshold)
            matched.append(np.where(m != NO_MATCH, m + offset, NO_MATCH))
        return (
            concat([g.ignore for g in gts], bool),
            concat([p.labels for p in preds], np.int64),
            concat([p.scores for p in preds], np.float64),
            concat(matched, np.int64),
        )
