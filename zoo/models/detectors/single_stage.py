"""Single-stage dense detector (SSD): backbone -> neck -> head over priors; the base every
prior-based one-stage detector shares."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torchvision.ops import clip_boxes_to_image

from zoo.models.necks import build_neck
from zoo.models.postprocess import build_test_settings, multiclass_nms
from zoo.registry import BACKBONES, CODERS, DETECTORS, HEADS, LOSSES, MATCHERS, PRIORS
from zoo.task.assign import assign_targets

DEFAULT_TEST = {"score_threshold": 0.01, "nms_threshold": 0.45, "max_detections": 200, "topk_per_class": 400}


class DenseDetector(nn.Module):
    """What every prior-based detector shares: the backbone/neck wiring and the inference loop."""

    def _build_features(self, backbone: Mapping, neck: Mapping | None) -> None:
        self.backbone = BACKBONES.build(backbone)
        self.neck = build_neck(neck, self.backbone)

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.neck(self.backbone(images))

    def _postprocess(self, boxes: torch.Tensor, probs: torch.Tensor, size: Sequence[int]) -> dict[str, torch.Tensor]:
        """Per image: clip to the input, per-class NMS with ``self.test_cfg``."""
        return multiclass_nms(clip_boxes_to_image(boxes, tuple(size)), probs, **self.test_cfg)


@DETECTORS.register("single_stage")
class SingleStageDetector(DenseDetector):
    def __init__(self, num_classes: int, backbone: Mapping, head: Mapping, priors: Mapping, matcher: Mapping,
                 coder: Mapping, loss: Mapping, neck: Mapping | None = None, test: Mapping | None = None):
        super().__init__()
        self.num_classes = num_classes
        self._build_features(backbone, neck)
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

    def forward(self, images: torch.Tensor, targets: Sequence[dict[str, torch.Tensor]] | None = None):
        features = self.features(images)
        scores, deltas = self.head(features)
        anchors = self.priors([f.shape[-2:] for f in features], images.shape[-2:], images.device)
        if self.training:
            if targets is None:
                raise ValueError("single_stage: training forward needs targets")
            labels, box_targets = assign_targets(anchors, targets, self.matcher, self.coder)
            return {f"ssd/{k}": v for k, v in self.loss(scores, deltas, labels, box_targets).items()}
        boxes = self.coder.decode(deltas, anchors)
        probs = scores.softmax(dim=-1)[..., 1:]
        return [self._postprocess(b, p, images.shape[-2:]) for b, p in zip(boxes, probs)]
