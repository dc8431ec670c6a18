"""Processed ground truth and predictions in the shapes the COCO API reads.

Category ids are ``label + 1`` (COCO ids start at 1), boxes become ``[x, y, w, h]``, ignored ground
truth becomes ``iscrowd=1`` and ``area`` is the source's own (a COCO annotation's, from its mask: it
decides the small/medium/large ranges) or else ``w * h``, the box area. Every
image seen is listed, including images that have only predictions, so that COCOeval counts their
detections as false positives instead of loadRes rejecting them.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from zoo.evaluation.base import GroundTruth, Prediction, concat


# COCO's object sizes by area, both ends inclusive as pycocotools and Detectron's proposal recall test them.
AREA_RANGES = {"small": (0.0, 32.0 ** 2), "medium": (32.0 ** 2, 96.0 ** 2), "large": (96.0 ** 2, float("inf"))}


def in_area_range(areas, size: str):
    """Which of ``areas`` (a numpy array or a tensor) fall in the COCO size range ``size``."""
    low, high = AREA_RANGES[size]
    return (areas >= low) & (areas <= high)


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


def coco_ground_truth(image_ids: Sequence[int], gts: Sequence[GroundTruth], class_names: Sequence[str]) -> dict:
    """An in-memory COCO annotation dict (what ``instances_*.json`` would hold)."""
    counts = [len(g.labels) for g in gts]
    xywh = xyxy_to_xywh(concat([g.boxes for g in gts], np.float64, columns=4))
    areas = concat([g.object_areas() for g in gts], np.float64)
    columns = (
        np.repeat(np.asarray(image_ids, np.int64), counts).tolist(),
        (concat([g.labels for g in gts], np.int64) + 1).tolist(),
        xywh.tolist(),
        areas.tolist(),
        concat([g.ignore for g in gts], np.int64).tolist(),
    )
    # COCO wants one dict per box; the columns above are computed vectorised, this only packs them.
    annotations = [
        {"id": ann_id, "image_id": image, "category_id": category, "bbox": bbox, "area": area, "iscrowd": crowd}
        for ann_id, (image, category, bbox, area, crowd) in enumerate(zip(*columns), start=1)
    ]
    return {
        "images": [{"id": int(i), "height": g.height, "width": g.width} for i, g in zip(image_ids, gts)],
        "annotations": annotations,
        "categories": [{"id": k + 1, "name": name} for k, name in enumerate(class_names)],
    }


def coco_detections(image_ids: Sequence[int], preds: Sequence[Prediction], max_per_image: int = 100) -> np.ndarray:
    """``(N, 7)`` rows ``[image_id, x, y, w, h, score, category_id]``, the array form of a COCO
    results file that both backends' ``loadRes`` accept, with each image's ``max_per_image`` best
    (COCO's protocol: COCOeval's own cap of 100 applies per image *and class*, so a detector giving
    200 per image would otherwise be scored on more)."""
    best = [np.argsort(-p.scores, kind="stable")[:max_per_image] for p in preds]
    return np.column_stack([
        np.repeat(np.asarray(image_ids, np.float64), [len(b) for b in best]),
        xyxy_to_xywh(concat([p.boxes[b] for p, b in zip(preds, best)], np.float64, columns=4)),
        concat([p.scores[b] for p, b in zip(preds, best)], np.float64),
        concat([p.labels[b] for p, b in zip(preds, best)], np.int64) + 1,
    ])
