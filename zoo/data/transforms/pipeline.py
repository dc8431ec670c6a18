"""Runs a list of albumentations ops on one sample, seeded per sample."""
from __future__ import annotations

import random

import albumentations as A
import numpy as np

from zoo.data.annotations import as_targets


def fresh_seed() -> int:
    """OS entropy: unseeded calls must differ between DataLoader workers, which fork one shared state."""
    return int(np.random.SeedSequence().generate_state(1)[0])


class AlbumentationsPipeline:
    """``pipeline(image, boxes, labels, ignore, seed)`` -> dict(image, boxes, labels, ignore, scale).

    Labels and ignore flags ride along with the boxes as albumentations label fields, so a box dropped by a
    crop takes its label and flag with it. ``scale`` is (output width / input width, output height / input
    height): exact for pure resizes, informative only for the random training recipes.
    """

    def __init__(self, ops: list):
        bbox_params = A.BboxParams(format="pascal_voc", label_fields=["labels", "ignore"], clip=True,
                                   filter_invalid_bboxes=True)
        self.compose = A.Compose(ops, bbox_params=bbox_params)

    def __call__(self, image: np.ndarray, boxes, labels, ignore, seed: int | None = None) -> dict:
        seed = fresh_seed() if seed is None else seed
        # One generator shared by all ops: albumentations' set_random_seed gives every op its own generator
        # with the same seed, so ops with equal probabilities (flip, expand) would always fire together.
        self.compose.set_random_state(np.random.default_rng(seed), random.Random(seed))
        out = self.compose(image=image, bboxes=np.asarray(boxes, np.float32).reshape(-1, 4),
                           labels=np.asarray(labels, np.int64), ignore=np.asarray(ignore, np.bool_))
        (in_h, in_w), (out_h, out_w) = image.shape[:2], out["image"].shape[:2]
        boxes, labels, ignore = as_targets(out["bboxes"], out["labels"], out["ignore"])
        return dict(image=out["image"], boxes=boxes, labels=labels, ignore=ignore, scale=(out_w / in_w, out_h / in_h))

    def __repr__(self) -> str:
        return f"AlbumentationsPipeline({self.compose.transforms})"
