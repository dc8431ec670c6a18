"""The interface every evaluator keeps, and the per-image storage they share.

An evaluator is fed image by image (``process``) and scores everything it was fed at the end
(``evaluate``), as in detectron2. Ground truth and predictions are stored separately, keyed by
``image_id``, so an image may have ground truth and no predictions or predictions and no ground
truth (it then has no objects: its detections are false positives). Feeding the same image twice
without ``reset`` raises, because silently double counting (or silently dropping) an image would
bias the metric, and the usual cause is a missing ``reset`` or a padded distributed sampler.
"""
from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from zoo.evaluation.tables import format_per_class_table


@dataclass(frozen=True)
class GroundTruth:
    boxes: np.ndarray  # (N, 4) float64 xyxy, original image pixels
    labels: np.ndarray  # (N,) int64 in 0..C-1
    ignore: np.ndarray  # (N,) bool: VOC difficult / COCO crowd
    height: int  # 0 when unknown
    width: int
    area: np.ndarray | None = None  # (N,) the source's object area (COCO: the mask's), None: the box's

    def object_areas(self) -> np.ndarray:
        """(N,) the source's object areas where it has them, else the boxes' (what COCO's size ranges use)."""
        if self.area is not None:
            return np.asarray(self.area, dtype=np.float64)
        return (self.boxes[:, 2] - self.boxes[:, 0]) * (self.boxes[:, 3] - self.boxes[:, 1])


@dataclass(frozen=True)
class Prediction:
    boxes: np.ndarray  # (M, 4) float64 xyxy
    scores: np.ndarray  # (M,) float64
    labels: np.ndarray  # (M,) int64


def to_numpy(value: Any, dtype: Any) -> np.ndarray:
    """A numpy copy of an array, list or torch tensor (on any device) with the given dtype."""
    if hasattr(value, "detach"):  # torch.Tensor, without importing torch here
        value = value.detach().cpu().numpy()
    return np.array(value, dtype=dtype)  # a copy: callers may reuse their buffers


def concat(parts: Sequence[np.ndarray], dtype: Any, columns: int | None = None) -> np.ndarray:
    """Concatenate per-image arrays; no images give an empty (0,) or (0, columns) array."""
    if not parts:
        return np.zeros((0,) if columns is None else (0, columns), dtype)
    return np.concatenate(parts).astype(dtype, copy=False)


class Evaluator(abc.ABC):
    """reset / process / evaluate, plus a PR-curve plot and a per-class text table.

    ``evaluate`` returns flat float metrics and ``'per_class': {class_name: {metric: value}}``;
    ``primary_metric`` names the flat key used to pick the best checkpoint. An undefined value
    (a class without ground truth) is NaN.
    """

    primary_metric: str
    table_columns: tuple[str, ...]  # per-class keys shown by format_table, in order
    source = "detections"  # or "proposals": fed a two-stage model's RPN proposals (``max_proposals`` each)

    def __init__(self, class_names: Sequence[str]):
        names = [str(n) for n in class_names]
        if not names:
            raise ValueError("an evaluator needs at least one class name")
        if len(set(names)) != len(names):
            raise ValueError(f"class names must be unique (per-class results are keyed by name): {names}")
        self.class_names = names
        self.reset()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def reset(self) -> None:
        self._gts: dict[int, GroundTruth] = {}
        self._preds: dict[int, Prediction] = {}

    def process(self, ground_truths: Iterable[Mapping[str, Any]], predictions: Iterable[Mapping[str, Any]]) -> None:
        """Store one batch. Values may be numpy arrays, lists or torch tensors."""
        for gt in ground_truths:
            self._store(self._gts, int(gt["image_id"]), self._as_ground_truth(gt), "ground truth")
        for pred in predictions:
            self._store(self._preds, int(pred["image_id"]), self._as_prediction(pred), "predictions")

    @abc.abstractmethod
    def evaluate(self) -> dict[str, Any]: ...

    @abc.abstractmethod
    def plot(self, out_dir: str) -> list[str]:
        """Write PNG figures of the last ``evaluate`` into ``out_dir``; return their paths."""

    def format_table(self, results: Mapping[str, Any]) -> str:
        return format_per_class_table(results["per_class"], self.table_columns, self.primary_metric,
                                      results[self.primary_metric])

    def class_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Per class: the non-ignored ground-truth boxes and the detections processed so far."""
        gt = concat([g.labels[~g.ignore] for g in self._gts.values()], np.int64)
        det = concat([p.labels for p in self._preds.values()], np.int64)
        return np.bincount(gt, minlength=self.num_classes), np.bincount(det, minlength=self.num_classes)

    # -- storage ---------------------------------------------------------------------------------

    def image_ids(self) -> list[int]:
        """Every image seen, with ground truth or predictions or both, in ascending order."""
        return sorted(self._gts.keys() | self._preds.keys())

    def ground_truth(self, image_id: int) -> GroundTruth:
        return self._gts.get(image_id, _EMPTY_GT)

    def prediction(self, image_id: int) -> Prediction:
        return self._preds.get(image_id, _EMPTY_PRED)

    @staticmethod
    def _store(store: dict, image_id: int, item: Any, what: str) -> None:
        if image_id in store:
            raise ValueError(
                f"{what} for image_id {image_id} were already processed; call reset() before a new "
                "evaluation, and make sure each image is fed once (a distributed sampler may pad with repeats)"
            )
        store[image_id] = item

    def _as_ground_truth(self, gt: Mapping[str, Any]) -> GroundTruth:
        boxes = to_numpy(gt["boxes"], np.float64).reshape(-1, 4)
        labels = self._checked_labels(gt["labels"], len(boxes), gt["image_id"])
        ignore = gt.get("ignore")
        ignore = np.zeros(len(boxes), bool) if ignore is None else to_numpy(ignore, bool).reshape(-1)
        if len(ignore) != len(boxes):
            raise ValueError(f"image {gt['image_id']}: {len(boxes)} boxes but {len(ignore)} ignore flags")
        area = gt.get("area")
        area = None if area is None else to_numpy(area, np.float64).reshape(-1)
        if area is not None and len(area) != len(boxes):
            raise ValueError(f"image {gt['image_id']}: {len(boxes)} boxes but {len(area)} areas")
        return GroundTruth(boxes, labels, ignore, int(gt.get("height", 0)), int(gt.get("width", 0)), area)

    def _as_prediction(self, pred: Mapping[str, Any]) -> Prediction:
        boxes = to_numpy(pred["boxes"], np.float64).reshape(-1, 4)
        labels = self._checked_labels(pred["labels"], len(boxes), pred["image_id"])
        scores = to_numpy(pred["scores"], np.float64).reshape(-1)
        if len(scores) != len(boxes):
            raise ValueError(f"image {pred['image_id']}: {len(boxes)} boxes but {len(scores)} scores")
        return Prediction(boxes, scores, labels)

    def _checked_labels(self, labels: Any, count: int, image_id: Any) -> np.ndarray:
        labels = to_numpy(labels, np.int64).reshape(-1)
        if len(labels) != count:
            raise ValueError(f"image {image_id}: {count} boxes but {len(labels)} labels")
        # Catches the classic off-by-one of a background index leaking out of a head.
        if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"image {image_id}: labels must lie in 0..{self.num_classes - 1}, got {np.unique(labels)}")
        return labels


_EMPTY_GT = GroundTruth(np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0, bool), 0, 0)
_EMPTY_PRED = Prediction(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))
