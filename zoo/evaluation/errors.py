"""Where the errors are: each confident detection is correct, a duplicate, a localisation error, a
classification error or background, and each ground truth never found is missed.

For the detections scoring at least ``score_threshold``, in each image: matched to the same-class
ground truth of highest IoU (as the VOC metric does); at IoU >= ``iou_threshold`` the first (highest
scoring) claim on a box is ``correct``, later ones ``duplicate``, and claims on ``ignore`` boxes are
not counted (looser overlaps with them are background). An unmatched detection overlapping a same-class box at IoU >= ``background_iou`` is a
``localisation`` error, else one overlapping another class's box at that IoU a ``classification``
error, else ``background``. Non-ignored boxes without a correct detection are ``missed``. The
categories follow Hoiem et al. (2012), simplified to counts.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torchvision.ops import box_iou

from zoo.evaluation.base import Evaluator
from zoo.evaluation.tables import format_per_class_table
from zoo.evaluation.voc_ap import NO_MATCH, claims, match_to_ground_truth
from zoo.registry import EVALUATORS

CATEGORIES = ("correct", "duplicate", "localisation", "classification", "background", "missed")


@EVALUATORS.register("errors")
class ErrorBreakdown(Evaluator):
    primary_metric = "errors_correct"  # higher is better, as the trainer's choice of best.pt assumes
    table_columns = CATEGORIES

    def __init__(self, class_names: Sequence[str], score_threshold: float = 0.3, iou_threshold: float = 0.5,
                 background_iou: float = 0.1):
        if not 0.0 < background_iou <= iou_threshold <= 1.0:
            raise ValueError(f"errors: need 0 < background_iou <= iou_threshold <= 1, got {background_iou}, "
                             f"{iou_threshold}")
        self.score_threshold, self.iou_threshold, self.background_iou = score_threshold, iou_threshold, background_iou
        super().__init__(class_names)

    def reset(self) -> None:
        super().reset()
        self._counts: np.ndarray | None = None

    def evaluate(self) -> dict[str, Any]:
        counts = np.zeros((self.num_classes, len(CATEGORIES)), np.int64)  # per class x category
        for image_id in self.image_ids():
            self._count_image(image_id, counts)
        self._counts = counts
        per_class = {name: dict(zip(CATEGORIES, map(int, row))) for name, row in zip(self.class_names, counts)}
        totals = {f"errors_{c}": float(v) for c, v in zip(CATEGORIES, counts.sum(axis=0))}
        return {**totals, "per_class": per_class}

    def _count_image(self, image_id: int, counts: np.ndarray) -> None:
        gt, pred = self.ground_truth(image_id), self.prediction(image_id)
        confident = np.flatnonzero(pred.scores >= self.score_threshold)
        order = confident[np.argsort(-pred.scores[confident], kind="stable")]
        boxes, labels = pred.boxes[order], pred.labels[order]
        matched = match_to_ground_truth(boxes, labels, gt.boxes, gt.labels, self.iou_threshold)
        kind = np.full(len(order), -1)  # index into CATEGORIES; -1: on an ignored box, not counted
        on_ignored, first_claim = claims(matched, gt.ignore)
        kind[(matched != NO_MATCH) & ~on_ignored] = CATEGORIES.index("duplicate")
        kind[first_claim] = CATEGORIES.index("correct")
        found = np.zeros(len(gt.labels), bool)
        found[matched[first_claim]] = True
        unmatched = matched == NO_MATCH
        if unmatched.any():
            iou = np.zeros((len(order), len(gt.labels)))
            if len(gt.labels):
                iou = np.nan_to_num(box_iou(torch.from_numpy(boxes), torch.from_numpy(gt.boxes)).numpy())
            # Ignored boxes are no one's target: only a match (IoU >= iou_threshold) on one goes uncounted,
            # a looser overlap is background, as the VOC metric counts it a false positive.
            iou[:, gt.ignore] = 0.0
            same = labels[:, None] == gt.labels[None, :]
            near_same = (np.where(same, iou, 0) >= self.background_iou).any(axis=1)
            near_other = (np.where(~same, iou, 0) >= self.background_iou).any(axis=1)
            rest = np.select([near_same, near_other], [CATEGORIES.index("localisation"),
                                                       CATEGORIES.index("classification")],
                             CATEGORIES.index("background"))
            kind[unmatched] = rest[unmatched]
        counted = kind >= 0
        np.add.at(counts, (labels[counted], kind[counted]), 1)
        missed = ~found & ~gt.ignore
        np.add.at(counts, (gt.labels[missed], CATEGORIES.index("missed")), 1)

    def format_table(self, results) -> str:
        title = (f"error breakdown: detections scoring >= {self.score_threshold:g} (IoU {self.iou_threshold:g}, "
                 f"background below {self.background_iou:g}) and missed boxes")
        return title + "\n" + format_per_class_table(results["per_class"], CATEGORIES, self.primary_metric,
                                                     results[self.primary_metric], counts=CATEGORIES)

    def plot(self, out_dir: str) -> list[str]:
        if self._counts is None:
            raise RuntimeError("call evaluate() before plot()")
        fig = Figure(figsize=(1.6 + 1.1 * self.num_classes, 3.6), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        x = np.arange(self.num_classes)
        bottom = np.zeros(self.num_classes)
        for k, category in enumerate(CATEGORIES):
            ax.bar(x, self._counts[:, k], bottom=bottom, label=category)
            bottom += self._counts[:, k]
        ax.set_xticks(x, self.class_names, rotation=30, ha="right")
        ax.set(ylabel="count", title=f"detections (score >= {self.score_threshold:g}) and missed boxes")
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
        path = os.path.join(out_dir, "errors.png")
        os.makedirs(out_dir, exist_ok=True)
        fig.savefig(path, dpi=80)
        return [path]
