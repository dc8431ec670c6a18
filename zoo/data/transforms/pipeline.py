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
        # Proposals (Fast R-CNN's given RoIs) ride with the ground truth, told apart by a third label field, so that
        # a flip or a crop moves, clips and drops them as it does the objects.
        self.with_proposals = A.Compose(ops, bbox_params=A.BboxParams(
            format="pascal_voc", label_fields=["labels", "ignore", "proposal"], clip=True, filter_invalid_bboxes=True))

    def __call__(self, image: np.ndarray, boxes, labels, ignore, seed: int | None = None,
                 proposals: np.ndarray | None = None) -> dict:
        seed = fresh_seed() if seed is None else seed
        compose = self.compose if proposals is None else self.with_proposals
        # One generator shared by all ops: albumentations' set_random_seed gives every op its own generator
        # with the same seed, so ops with equal probabilities (flip, expand) would always fire together.
        compose.set_random_state(np.random.default_rng(seed), random.Random(seed))
        boxes, labels, ignore = as_targets(boxes, labels, ignore)
        if proposals is None:
            out = compose(image=image, bboxes=boxes, labels=labels, ignore=ignore)
        else:
            given = np.asarray(proposals, np.float32).reshape(-1, 4)
            out = compose(image=image, bboxes=np.concatenate([boxes, given]),
                          labels=np.concatenate([labels, np.zeros(len(given), np.int64)]),
                          ignore=np.concatenate([ignore, np.zeros(len(given), np.bool_)]),
                          proposal=np.concatenate([np.zeros(len(boxes), np.bool_), np.ones(len(given), np.bool_)]))
        (in_h, in_w), (out_h, out_w) = image.shape[:2], out["image"].shape[:2]
        kind = np.asarray(out.get("proposal", np.zeros(len(out["bboxes"]), np.bool_)), np.bool_).reshape(-1)
        moved = np.asarray(out["bboxes"], np.float32).reshape(-1, 4)
        boxes, labels, ignore = as_targets(moved[~kind], np.asarray(out["labels"]).reshape(-1)[~kind],
                                           np.asarray(out["ignore"]).reshape(-1)[~kind])
        sample = dict(image=out["image"], boxes=boxes, labels=labels, ignore=ignore, scale=(out_w / in_w, out_h / in_h))
        if proposals is not None:
            sample["proposals"] = moved[kind]
        return sample

    def __repr__(self) -> str:
        return f"AlbumentationsPipeline({self.compose.transforms})"
