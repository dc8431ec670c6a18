"""Single-stage dense detector (SSD): backbone -> neck -> head over priors; the base every
prior-based one-stage detector shares."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torchvision.ops import clip_boxes_to_image

from zoo.models.necks import build_neck
from zoo.models.postprocess import build_test_settings, level_topk_nms, multiclass_nms
from zoo.registry import BACKBONES, CODERS, DETECTORS, HEADS, LOSSES, MATCHERS, PRIORS
from zoo.structures import per_image_sizes
from zoo.task.assign import assign_targets

# clip_before_nms: clip the decoded boxes to the image before NMS (torchvision's SSD) rather than its survivors after.
# topk_per_level: select per level the best (prior, class) pairs instead of each class's best priors (MMDetection).
DEFAULT_TEST = {"score_threshold": 0.01, "nms_threshold": 0.45, "max_detections": 200, "topk_per_class": 400,
                "clip_before_nms": False, "topk_per_level": None}


class DenseDetector(nn.Module):
    """What every prior-based detector shares: the inference step from head outputs to detections."""

    def _detect(self, scores: torch.Tensor, deltas: torch.Tensor, anchors: torch.Tensor,
                sizes: Sequence[tuple[int, int]], suppressed: torch.Tensor | None = None,
                level_counts: Sequence[int] | None = None) -> list[dict[str, torch.Tensor]]:
        """(B, P, C+1) scores and (B, P, 4) deltas over (B or 1, P, 4) anchors -> per image, boxes decoded,
        put through per-class NMS with ``self.test_cfg`` and the survivors clipped to the image (``sizes``: each
        one's before padding), in that order as the SSD and RefineDet releases' detection output does (clipping
        first would change the overlaps NMS sees at the border; ``clip_before_nms`` does so, as torchvision). Decoding and softmax
        run in fp32 (under bf16/fp16 autocast, scores would be ranked on an 8-bit mantissa); ``suppressed``
        (B, P) zeroes the scores of priors a first stage rejected."""
        boxes = self.coder.decode(deltas.float(), anchors)
        probs = scores.float().softmax(dim=-1)[..., 1:]
        if suppressed is not None:
            probs = probs.masked_fill(suppressed[..., None], 0.0)
        settings = dict(self.test_cfg)
        if settings.pop("clip_before_nms", False):
            boxes = [clip_boxes_to_image(b, size) for b, size in zip(boxes, sizes)]
        per_level = settings.pop("topk_per_level", None)
        if per_level is not None:
            if level_counts is None:
                raise ValueError(f"{type(self).__name__}: model.test.topk_per_level is not supported by this detector")
            settings.pop("topk_per_class")
            return [_clipped(level_topk_nms(b, p, level_counts, topk_per_level=per_level, **settings), size)
                    for b, p, size in zip(boxes, probs, sizes)]
        return [_clipped(multiclass_nms(b, p, **settings), size) for b, p, size in zip(boxes, probs, sizes)]


def _clipped(detections: dict[str, torch.Tensor], size: tuple[int, int]) -> dict[str, torch.Tensor]:
    return {**detections, "boxes": clip_boxes_to_image(detections["boxes"], size)}


@DETECTORS.register("single_stage")
class SingleStageDetector(DenseDetector):
    def __init__(self, num_classes: int, backbone: Mapping, head: Mapping, priors: Mapping, matcher: Mapping,
                 coder: Mapping, loss: Mapping, neck: Mapping | None = None, test: Mapping | None = None):
        super().__init__()
        self.num_classes = num_classes
        self.backbone = BACKBONES.build(backbone)
        self.neck = build_neck(neck, self.backbone)
        self.priors = PRIORS.build(priors)
        anchors = self.priors.num_anchors_per_level()
        if len(anchors) != len(self.neck.out_channels):
            raise ValueError(f"single_stage: the priors describe {len(anchors)} levels but the neck gives "
                             f"{len(self.neck.out_channels)}")
        self.head = HEADS.build(head, in_channels=self.neck.out_channels, num_anchors=anchors,
                                num_scores=num_classes + 1)
        self.matcher = MATCHERS.build(matcher)
        self.coder = CODERS.build(coder)
        self.loss = LOSSES.build(loss)
        self.test_cfg = build_test_settings(test, DEFAULT_TEST)

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.neck(self.backbone(images))

    def forward(self, images: torch.Tensor, targets: Sequence[dict[str, torch.Tensor]] | None = None,
                image_sizes: Sequence[tuple[int, int]] | None = None):
        features = self.features(images)
        scores, deltas = self.head(features)
        anchors = self.priors([f.shape[-2:] for f in features], images.shape[-2:], images.device)
        if self.training:
            if targets is None:
                raise ValueError("single_stage: training forward needs targets")
            labels, box_targets = assign_targets(anchors, targets, self.matcher, self.coder)
            return {f"ssd/{k}": v for k, v in self.loss(scores, deltas, labels, box_targets).items()}
        counts = [int(f.shape[-2]) * int(f.shape[-1]) * a for f, a in zip(features, self.priors.num_anchors_per_level())]
        return self._detect(scores, deltas, anchors, per_image_sizes(images, image_sizes), level_counts=counts)
