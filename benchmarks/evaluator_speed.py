"""Evaluator speed: COCO AP through pycocotools and faster-coco-eval, and VOC mAP, on one synthetic set.

Usage: python benchmarks/evaluator_speed.py [--images 5000] [--detections 100] [--seed 0]

Ground truth: 1 to 15 boxes per image over 5 classes, a few pixels to half the image, 10% ignored.
Predictions: exactly ``--detections`` per image: the ground truths jittered (some misclassified) and
background boxes, random scores. Each evaluator is timed once from process() to the end of evaluate()
(COCO: the whole COCOeval: evaluate, accumulate, summarize); the COCO figures of the two backends are
compared key by key.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from zoo.evaluation import COCOEvaluator, VOCEvaluator
from zoo.evaluation.coco import STAT_KEYS

CLASSES = ["circle", "square", "triangle", "star", "hexagon"]


def synthetic_set(num_images: int, detections: int, seed: int):
    rng = np.random.default_rng(seed)
    gts, preds = [], []
    for image_id in range(1, num_images + 1):
        n = int(rng.integers(1, 16))
        size = np.exp(rng.uniform(np.log(6), np.log(240), (n, 1))) * rng.uniform(0.7, 1.3, (n, 2))
        xy = rng.uniform(0, 1, (n, 2)) * (np.array([640, 480]) - size)
        boxes = np.hstack([xy, xy + size])
        labels = rng.integers(0, len(CLASSES), n)
        gts.append({"image_id": image_id, "boxes": boxes, "labels": labels, "ignore": rng.random(n) < 0.1,
                    "height": 480, "width": 640})
        hits = boxes + rng.normal(0, 0.1, (n, 4)) * np.tile(size, 2)
        hit_labels = np.where(rng.random(n) < 0.9, labels, rng.integers(0, len(CLASSES), n))
        m = detections - n
        bg_xy = rng.uniform(0, 560, (m, 2))
        preds.append({"image_id": image_id, "boxes": np.vstack([hits, np.hstack([bg_xy, bg_xy + rng.uniform(8, 120, (m, 2))])]),
                      "labels": np.concatenate([hit_labels, rng.integers(0, len(CLASSES), m)]),
                      "scores": np.concatenate([rng.uniform(0.3, 1.0, n), rng.uniform(0.0, 0.6, m)])})
    return gts, preds


def timed(evaluator, gts, preds):
    start = time.perf_counter()
    evaluator.process(gts, preds)
    out = evaluator.evaluate()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--detections", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    gts, preds = synthetic_set(args.images, args.detections, args.seed)
    print(f"{args.images} images, {sum(len(g['boxes']) for g in gts)} ground truths, "
          f"{sum(len(p['boxes']) for p in preds)} detections")
    fast, fast_s = timed(COCOEvaluator(CLASSES, backend="faster_coco_eval"), gts, preds)
    ref, ref_s = timed(COCOEvaluator(CLASSES, backend="pycocotools"), gts, preds)
    voc, voc_s = timed(VOCEvaluator(CLASSES, use_07_metric=False), gts, preds)
    voc07, voc07_s = timed(VOCEvaluator(CLASSES, use_07_metric=True), gts, preds)
    gap = max(abs(fast[k] - ref[k]) for k in STAT_KEYS)
    print(f"COCO pycocotools      {ref_s:8.2f} s   AP {ref['coco_ap']:.4f}  AP50 {ref['coco_ap50']:.4f}")
    print(f"COCO faster-coco-eval {fast_s:8.2f} s   AP {fast['coco_ap']:.4f}  AP50 {fast['coco_ap50']:.4f}")
    print(f"  faster-coco-eval is {ref_s / fast_s:.1f}x faster; largest difference over the 12 stats {gap:.2e}")
    print(f"VOC area mAP@0.5      {voc_s:8.2f} s   {voc['voc_map50']:.4f}")
    print(f"VOC07 11-point mAP@0.5 {voc07_s:7.2f} s   {voc07['voc07_map50']:.4f}")


if __name__ == "__main__":
    main()
