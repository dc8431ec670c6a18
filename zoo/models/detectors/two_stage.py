"""Two-stage detectors: Faster R-CNN and FPN (backbone -> neck -> RPN proposals -> RoI box head), and the detectors of
given proposals (Fast R-CNN, SPP-net and R-CNN: backbone -> neck -> RoI box head on the data's proposals)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from zoo.models.necks import build_neck
from zoo.registry import BACKBONES, DETECTORS, HEADS
from zoo.structures import per_image_sizes


@DETECTORS.register("two_stage")
class TwoStageDetector(nn.Module):
    """``rpn`` (a ``type: rpn`` head) proposes boxes on every neck level; ``roi_head`` (a
    ``type: roi_box_head``) pools, classifies and refines them. Losses ``rpn/obj``, ``rpn/loc``,
    ``roi/cls``, ``roi/loc``. With ``neck: none`` the backbone's levels feed both (Faster R-CNN:
    one stride-16 level)."""

    def __init__(self, num_classes: int, backbone: Mapping, rpn: Mapping, roi_head: Mapping,
                 neck: Mapping | None = None):
        super().__init__()
        self.num_classes = num_classes
        self.backbone = BACKBONES.build(backbone)
        self.neck = build_neck(neck, self.backbone)
        self.rpn = HEADS.build(rpn, in_channels=self.neck.out_channels, in_strides=self.neck.strides)
        self.roi_head = HEADS.build(roi_head, in_channels=self.neck.out_channels, in_strides=self.neck.strides,
                                    num_classes=num_classes, roi_strides=getattr(self.neck, "roi_strides", None))

    def forward(self, images: torch.Tensor, targets: Sequence[dict[str, torch.Tensor]] | None = None,
                image_sizes: Sequence[tuple[int, int]] | None = None):
        if self.training and targets is None:
            raise ValueError("two_stage: training forward needs targets")
        sizes = per_image_sizes(images, image_sizes)
        features, proposals, rpn_losses = self._propose(images, sizes, targets)
        if not self.training:
            return self.roi_head(features, proposals, sizes)
        roi_losses = self.roi_head(features, proposals, sizes, targets)
        return {**{f"rpn/{k}": v for k, v in rpn_losses.items()}, **{f"roi/{k}": v for k, v in roi_losses.items()}}

    def propose(self, images: torch.Tensor, max_proposals: int | None = None,
                image_sizes: Sequence[tuple[int, int]] | None = None) -> list[torch.Tensor]:
        """The RPN's proposals alone, per image (N, 4) in input pixels, best first (eval settings;
        ``max_proposals`` replaces their post-NMS top-N)."""
        return self._propose(images, per_image_sizes(images, image_sizes), None, max_proposals)[1]

    def _propose(self, images, sizes, targets, max_proposals=None):
        features = self.neck(self.backbone(images))
        proposals, losses = self.rpn(features, tuple(images.shape[-2:]), sizes, targets, max_proposals)
        return features, proposals, losses


@DETECTORS.register("fast_rcnn")
class FastRCNN(nn.Module):
    """Fast R-CNN (Girshick 2015): no RPN; the RoI head (``roi_box_head``) pools, classifies and refines the
    proposals the data gives each image (``data.<split>.proposals``, a file zoo-proposals writes), trained with the
    multi-task loss ``roi/cls`` + ``roi/loc``. The forward contract's images, targets and image_sizes, plus
    ``proposals``: per image (N, 4) in input pixels."""

    def __init__(self, num_classes: int, backbone: Mapping, roi_head: Mapping, neck: Mapping | None = None):
        super().__init__()
        self.num_classes = num_classes
        self.backbone = BACKBONES.build(backbone)
        self.neck = build_neck(neck, self.backbone)
        self.roi_head = HEADS.build(roi_head, in_channels=self.neck.out_channels, in_strides=self.neck.strides,
                                    num_classes=num_classes, roi_strides=getattr(self.neck, "roi_strides", None))

    def forward(self, images: torch.Tensor, targets: Sequence[dict[str, torch.Tensor]] | None = None,
                image_sizes: Sequence[tuple[int, int]] | None = None,
                proposals: Sequence[torch.Tensor] | None = None):
        if proposals is None:
            raise ValueError("fast_rcnn: needs each image's proposals; set model.proposals=selective_search, or give "
                             "the data a proposals file per split (data.train.proposals=..., data.val.proposals=..., "
                             "written by zoo-proposals)")
        if self.training and targets is None:
            raise ValueError("fast_rcnn: training forward needs targets")
        sizes = per_image_sizes(images, image_sizes)
        features = self.neck(self.backbone(images))
        rois = [p.float() for p in proposals]
        if not self.training:
            return self.roi_head(features, rois, sizes)
        return {f"roi/{k}": v for k, v in self.roi_head(features, rois, sizes, targets).items()}
