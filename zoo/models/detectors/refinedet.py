"""RefineDet (Zhang et al. 2018): an anchor refinement module (ARM) on the backbone sources, a
transfer connection block (the neck) and an object detection module (ODM) that classifies and
regresses the ARM-refined anchors."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch

from zoo.models.detectors.single_stage import DenseDetector
from zoo.models.necks import build_neck
from zoo.models.postprocess import build_test_settings
from zoo.registry import BACKBONES, CODERS, DETECTORS, HEADS, LOSSES, MATCHERS, PRIORS
from zoo.structures import per_image_sizes
from zoo.task.assign import assign_targets

DEFAULT_TEST = {"score_threshold": 0.01, "nms_threshold": 0.45, "max_detections": 500, "topk_per_class": 1000}
FILTER_MODES = ("authors", "port")


@dataclass(frozen=True)
class RefineSettings:
    """The ablation switches of paper Table 3 (``model.refine.*``).

    ``filter_mode`` says what negative anchor filtering does in training: ``authors`` (the
    authors' code) leaves filtered anchors out of hard-negative mining and keeps filtered positives;
    ``port`` (a widely used PyTorch port) drops filtered positives and mines negatives among all
    anchors (that port can also mine a dropped positive as a "negative" with its class as target;
    here it is ignored instead). At inference both drop the filtered anchors' detections."""

    arm: bool = True
    cascade: bool = True
    filter_negatives: bool = True
    theta: float = 0.99
    filter_mode: str = "authors"

    @classmethod
    def from_config(cls, node: Mapping[str, Any] | None) -> RefineSettings:
        node = dict(node or {})
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(node) - set(known))
        if unknown:
            raise ValueError(f"model.refine: unknown key(s) {unknown}; accepted: {known}")
        settings = cls(**node)
        if settings.filter_mode not in FILTER_MODES:
            raise ValueError(f"model.refine.filter_mode must be one of {FILTER_MODES}, got '{settings.filter_mode}'")
        if not 0.0 < settings.theta < 1.0:
            raise ValueError(f"model.refine.theta must lie in (0, 1), got {settings.theta}")
        if not settings.arm and (settings.cascade or settings.filter_negatives):
            raise ValueError("model.refine.arm=false needs model.refine.cascade=false and "
                             "model.refine.filter_negatives=false: both use the ARM's outputs")
        return settings


def filtered_anchors(arm_scores: torch.Tensor, theta: float) -> torch.Tensor:
    """(B, A) bool: anchors whose ARM background probability exceeds ``theta``."""
    return arm_scores.detach().float().softmax(dim=-1)[..., 0] > theta


def apply_negative_filter(labels: torch.Tensor, filtered: torch.Tensor, mode: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Returns ODM ``labels`` and the mask to leave out of hard-negative mining, per ``mode``."""
    if mode == "authors":
        return labels, filtered
    return labels.masked_fill(filtered & (labels > 0), -1), None


@DETECTORS.register("refinedet")
class RefineDet(DenseDetector):
    """``extras`` (a neck such as ``ssd_extras``) appends levels to the backbone's to form the
    sources; ``arm`` predicts 2 scores and 4 offsets per anchor on the sources; ``neck`` (``tcb``
    or ``none``) turns the sources into the ODM's features; ``odm`` predicts C+1 scores and 4
    offsets per anchor. Losses: ``arm/cls``, ``arm/loc``, ``odm/cls``, ``odm/loc``, each module
    normalised by its own positive count. ``arm_matcher`` matches the original anchors,
    ``odm_matcher`` the refined ones."""

    def __init__(self, num_classes: int, backbone: Mapping, arm: Mapping, odm: Mapping, priors: Mapping,
                 arm_matcher: Mapping, odm_matcher: Mapping, coder: Mapping, loss: Mapping,
                 extras: Mapping | None = None, neck: Mapping | None = None, refine: Mapping | None = None,
                 test: Mapping | None = None):
        super().__init__()
        self.num_classes = num_classes
        self.refine = RefineSettings.from_config(refine)
        self.backbone = BACKBONES.build(backbone)
        self.extras = build_neck(extras, self.backbone)  # backbone + extras = the ARM's sources
        self.neck = build_neck(neck, self.extras)
        # Anchor centres on the sources' strides (8/16/32/64), whatever the image size.
        self.priors = PRIORS.build({"steps": list(self.extras.strides), **dict(priors)})
        anchors = self.priors.num_anchors_per_level()
        if len(anchors) != len(self.extras.out_channels):
            raise ValueError(f"refinedet: the priors describe {len(anchors)} levels but the sources are "
                             f"{len(self.extras.out_channels)}")
        self.arm = (HEADS.build(arm, in_channels=self.extras.out_channels, num_anchors=anchors, num_scores=2)
                    if self.refine.arm else None)
        self.odm = HEADS.build(odm, in_channels=self.neck.out_channels, num_anchors=anchors,
                               num_scores=num_classes + 1)
        self.arm_matcher = MATCHERS.build(arm_matcher)
        self.odm_matcher = MATCHERS.build(odm_matcher)
        self.coder = CODERS.build(coder)
        self.loss = LOSSES.build(loss)
        self.test_cfg = build_test_settings(test, DEFAULT_TEST)

    def forward(self, images: torch.Tensor, targets: Sequence[dict[str, torch.Tensor]] | None = None,
                image_sizes: Sequence[tuple[int, int]] | None = None):
        sources = self.extras(self.backbone(images))
        anchors = self.priors([f.shape[-2:] for f in sources], images.shape[-2:], images.device)
        arm_scores, arm_deltas = self.arm(sources) if self.arm is not None else (None, None)
        scores, deltas = self.odm(self.neck(sources))
        odm_anchors = anchors
        if self.refine.cascade:  # two-step regression: the ODM starts from the ARM's boxes
            odm_anchors = self.coder.decode(arm_deltas.detach().float(), anchors)
        filtered = filtered_anchors(arm_scores, self.refine.theta) if self.refine.filter_negatives else None
        if self.training:
            if targets is None:
                raise ValueError("refinedet: training forward needs targets")
            return self._losses(anchors, odm_anchors, filtered, arm_scores, arm_deltas, scores, deltas, targets)
        return self._detect(scores, deltas, odm_anchors, per_image_sizes(images, image_sizes), suppressed=filtered)

    def _losses(self, anchors, odm_anchors, filtered, arm_scores, arm_deltas, scores, deltas, targets):
        losses = {}
        if self.arm is not None:
            labels, box_targets = assign_targets(anchors, targets, self.arm_matcher, self.coder, binary=True)
            losses.update({f"arm/{k}": v for k, v in self.loss(arm_scores, arm_deltas, labels, box_targets).items()})
        labels, box_targets = assign_targets(odm_anchors, targets, self.odm_matcher, self.coder)
        exclude = None
        if filtered is not None:
            labels, exclude = apply_negative_filter(labels, filtered, self.refine.filter_mode)
        odm = self.loss(scores, deltas, labels, box_targets, exclude=exclude)
        losses.update({f"odm/{k}": v for k, v in odm.items()})
        return losses
