"""COCO box metrics (AP@[.5:.95], AP50, AP75, by size, AR) computed by COCOeval.

Undefined values, which COCOeval reports as -1 (e.g. APs when no small object exists, or the AP
of a class without ground truth), are NaN here. Per-class AP is read from COCOeval's precision
array (area 'all', 100 detections per image), so its mean over classes equals ``coco_ap``.
Each image's 100 highest-scored detections are scored (COCO's protocol; ``coco_detections``).
"""
from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from zoo.evaluation.base import Evaluator
from zoo.evaluation.coco_backends import BACKENDS, run_coco_eval
from zoo.evaluation.coco_format import AREA_RANGES, coco_detections, coco_ground_truth, in_area_range
from zoo.evaluation.plotting import plot_pr_grid
from zoo.registry import EVALUATORS

# The order of COCOeval.stats[:12].
STAT_KEYS = (
    "coco_ap", "coco_ap50", "coco_ap75", "coco_aps", "coco_apm", "coco_apl",
    "coco_ar1", "coco_ar10", "coco_ar100", "coco_ars", "coco_arm", "coco_arl",
)
_SIZE_OF = {f"coco_a{kind}{size[0]}": size for kind in ("p", "r") for size in AREA_RANGES}  # coco_aps -> small, ...


def _zero_stats(gts) -> dict[str, float]:
    """Every statistic 0 for a set with no detections, NaN for a size range without a ground truth to find."""
    areas = np.concatenate([g.object_areas()[~g.ignore] for g in gts]) if gts else np.zeros(0)
    found = {"": len(areas) > 0, **{size: bool(in_area_range(areas, size).any()) for size in AREA_RANGES}}
    return {key: 0.0 if found[_SIZE_OF.get(key, "")] else math.nan for key in STAT_KEYS}


@EVALUATORS.register("coco")
class COCOEvaluator(Evaluator):
    primary_metric = "coco_ap"
    table_columns = ("num_gt", "num_det", "ap50", "ap75", "ap")

    def __init__(self, class_names: Sequence[str], backend: str = "pycocotools"):
        if backend not in BACKENDS:
            raise ValueError(f"unknown COCO backend '{backend}'; choose one of {', '.join(BACKENDS)}")
        self.backend = backend
        super().__init__(class_names)

    def reset(self) -> None:
        super().reset()
        self._curves: dict[str, list] | None = None

    def evaluate(self) -> dict[str, Any]:
        ids = self.image_ids()
        gts = [self.ground_truth(i) for i in ids]
        detections = coco_detections(ids, [self.prediction(i) for i in ids])
        num_gt, _ = self.class_counts()
        # the detections scored: each image's 100 best (category ids are labels + 1), not all that were processed
        num_det = np.bincount(detections[:, 6].astype(np.int64) - 1, minlength=self.num_classes)

        if len(detections) == 0:
            # pycocotools' loadRes cannot read an empty result list; nothing was detected, so every AP/AR is 0
            # where there is something to find, and undefined (pycocotools' -1, NaN here) where there is not.
            warnings.warn("COCO evaluation got no predictions; all metrics are 0", stacklevel=2)
            self._curves = {name: [] for name in self.class_names}
            zeros = np.where(num_gt > 0, 0.0, math.nan)
            return {**_zero_stats(gts), "per_class": self._per_class(num_gt, num_det, zeros, zeros, zeros)}

        coco_eval = run_coco_eval(coco_ground_truth(ids, gts, self.class_names), detections, self.backend)
        stats = np.asarray(coco_eval.stats[: len(STAT_KEYS)], dtype=np.float64)
        params = coco_eval.params
        # precision is [IoU T, recall R, class K, area A, max dets M]; keep area 'all', 100 dets.
        precision = coco_eval.eval["precision"][:, :, :, params.areaRngLbl.index("all"), -1]
        t50, t75 = (int(np.flatnonzero(np.isclose(params.iouThrs, t))[0]) for t in (0.5, 0.75))
        ap, ap50, ap75 = (_defined_mean(precision, axis=(0, 1)), _defined_mean(precision[t50], axis=0),
                          _defined_mean(precision[t75], axis=0))

        self._curves = {
            name: [(f"IoU 0.50: AP {ap50[k]:.3f}", params.recThrs, precision[t50, :, k]),
                   (f"IoU 0.75: AP {ap75[k]:.3f}", params.recThrs, precision[t75, :, k])] if num_gt[k] else []
            for k, name in enumerate(self.class_names)
        }
        return {
            **{key: _nan_if_undefined(v) for key, v in zip(STAT_KEYS, stats)},
            "per_class": self._per_class(num_gt, num_det, ap, ap50, ap75),
        }

    def plot(self, out_dir: str) -> list[str]:
        if self._curves is None:
            raise RuntimeError("call evaluate() before plot()")
        path = os.path.join(out_dir, "pr_coco.png")
        return [plot_pr_grid(self._curves, path, "COCO precision-recall (area all, 100 dets)")]

    def _per_class(self, num_gt: np.ndarray, num_det: np.ndarray, ap: np.ndarray, ap50: np.ndarray,
                   ap75: np.ndarray) -> dict[str, dict[str, Any]]:
        return {
            name: {"ap": float(ap[k]), "ap50": float(ap50[k]), "ap75": float(ap75[k]),
                   "num_gt": int(num_gt[k]), "num_det": int(num_det[k])}
            for k, name in enumerate(self.class_names)
        }


def _defined_mean(values: np.ndarray, axis: Any = None) -> Any:
    """Mean over the entries COCOeval defines (it writes -1 where there is no ground truth)."""
    defined = values > -1
    count = defined.sum(axis=axis)
    total = np.where(defined, values, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), math.nan)


def _nan_if_undefined(value: float) -> float:
    return math.nan if value < 0 else float(value)
