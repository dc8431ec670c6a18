"""CornerNet: an object is a pair of corners found on heatmaps and grouped by embeddings."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from zoo.models.necks import build_neck
from zoo.models.postprocess import build_test_settings
from zoo.ops.soft_nms import batched_soft_nms, check_soft_nms_args
from zoo.registry import BACKBONES, DETECTORS, HEADS, LOSSES
from zoo.structures import per_image_sizes
from zoo.task.corner_decode import decode_corners
from zoo.task.corner_targets import build_corner_targets

DEFAULT_TARGETS = {"min_overlap": 0.3, "fixed_radius": None, "penalty_reduction": True, "radius_formula": "exact"}
DEFAULT_TEST = {"k": 100, "max_distance": 0.5, "num_pairs": 1000, "kernel": 3, "nms": "gaussian", "sigma": 0.5,
                "nms_threshold": 0.5, "score_threshold": 0.001, "max_detections": 100}


@DETECTORS.register("cornernet")
class CornerNet(nn.Module):
    """Backbone (Hourglass: one map per stack, all one stride) -> ``corner_head`` -> losses
    ``corner/heat``, ``corner/pull``, ``corner/push``, ``corner/off`` summed over stacks.
    ``targets``: ``min_overlap`` (0.3), ``fixed_radius`` (null: object-dependent), ``penalty_reduction``,
    ``radius_formula`` (exact, or the authors' release: wider).
    Inference on the last stack: ``decode_corners``, then class-aware soft-NMS (``nms`` gaussian or
    linear) and the ``max_detections`` best; ``nms: none`` returns the decoded pairs as they are, best
    first (test-time augmentation pools every view's pairs and suppresses once, as the authors' test)."""

    def __init__(self, num_classes: int, backbone: Mapping, head: Mapping, loss: Mapping,
                 neck: Mapping | None = None, targets: Mapping | None = None, test: Mapping | None = None):
        super().__init__()
        self.num_classes = num_classes
        self.backbone = BACKBONES.build(backbone)
        self.neck = build_neck(neck, self.backbone)
        strides = set(self.neck.strides)
        if len(strides) != 1:
            raise ValueError(f"cornernet: the features must share one stride, got {list(self.neck.strides)}")
        self.stride = strides.pop()
        self.head = HEADS.build(head, in_channels=self.neck.out_channels, num_classes=num_classes)
        self.loss = LOSSES.build(loss)
        self.target_cfg = build_test_settings(targets, DEFAULT_TARGETS, "model.targets")
        self.test_cfg = build_test_settings(test, DEFAULT_TEST)
        if self.test_cfg["nms"] != "none":
            check_soft_nms_args(self.test_cfg["nms"], self.test_cfg["sigma"], self.test_cfg["max_detections"])

    def forward(self, images: torch.Tensor, targets: Sequence[dict[str, torch.Tensor]] | None = None,
                image_sizes: Sequence[tuple[int, int]] | None = None):
        outputs = self.head(self.neck(self.backbone(images)))
        if self.training:
            if targets is None:
                raise ValueError("cornernet: training forward needs targets")
            corner_targets = build_corner_targets(targets, self.num_classes, tuple(outputs[0]["heat"].shape[-2:]),
                                                  self.stride, **self.target_cfg)
            return {f"corner/{k}": v for k, v in self.loss(outputs, corner_targets).items()}
        return self._detect(outputs[-1], per_image_sizes(images, image_sizes))

    def _detect(self, out: dict[str, torch.Tensor], sizes: list[tuple[int, int]]) -> list[dict[str, torch.Tensor]]:
        cfg = self.test_cfg
        boxes, scores, labels, valid = decode_corners(out["heat"], out["embed"], out["offset"], self.stride,
                                                      cfg["k"], cfg["max_distance"], cfg["num_pairs"], cfg["kernel"])
        # (B, K, 4): each image's boxes clipped to its own size before padding
        limits = boxes.new_tensor([[w, h, w, h] for h, w in sizes])[:, None, :]
        boxes = torch.minimum(boxes.clamp(min=0), limits)
        valid = valid & (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])  # not wholly in padding
        if cfg["nms"] == "none":
            kept = torch.where(valid & (scores >= cfg["score_threshold"]), scores, -1.0)
            kept_scores, keep = kept.topk(min(cfg["max_detections"], kept.shape[1]), dim=1)
            count = (kept_scores >= 0).sum(dim=1)
        else:
            keep, kept_scores, count = batched_soft_nms(
                boxes, scores, labels, valid, method=cfg["nms"], sigma=cfg["sigma"],
                iou_threshold=cfg["nms_threshold"], score_threshold=cfg["score_threshold"],
                max_detections=cfg["max_detections"])
        return [{"boxes": b[k[:n]], "scores": s[:n], "labels": lb[k[:n]]}
                for b, lb, k, s, n in zip(boxes, labels, keep, kept_scores, count.tolist())]
