"""Fast R-CNN's RoI box head: pool each proposal, classify it and regress class-specific boxes."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_iou, clip_boxes_to_image, roi_align, roi_pool
from torchvision.ops.poolers import LevelMapper

from zoo.models.heads.svm import ClassSVMs
from zoo.models.postprocess import build_test_settings, multiclass_nms
from zoo.registry import CODERS, HEADS, MATCHERS, SAMPLERS
from zoo.task.assign import assign_image

# scoring: "softmax" (the classifier) or "svm" (R-CNN's per-class SVMs, sigmoid of their margins; needs ``svm``)
DEFAULT_TEST = {"score_threshold": 0.05, "nms_threshold": 0.5, "max_detections": 100, "topk_per_class": 1000,
                "scoring": "softmax"}


class RoIPooler(nn.Module):
    """Each RoI is pooled from the level k = floor(k0 + log2(sqrt(wh) / 224)), k0 = 4, clamped to the
    levels given (torchvision's LevelMapper; one level: that one), by ``roi_align``
    (torchvision.ops.roi_align) or ``roi_pool`` (torchvision.ops.roi_pool, as Faster R-CNN and the FPN
    paper pool). ``strides`` picks the feature levels to pool from; unset, the neck's ``roi_strides``
    (FPN: P2..P5, leaving P6 to the RPN), else every level. The levels are pooled in a loop written here
    rather than by torchvision's MultiScaleRoIAlign, which serves RoIAlign only and, counting the RoIs as
    a Python int, cannot be exported. ``aligned`` shifts the sampling grid by half a pixel (detectron2's
    ROIAlignV2); torchvision's and the original RoIAlign leave it unset.

    ``spp`` is SPP-net's spatial pyramid: the RoI max-pooled into each grid of ``pyramid_levels`` (e.g. [1, 2, 3, 6],
    50 bins), the bins laid side by side as a (C, 1, bins) map, which flattening heads (two_fc) take as they take a
    grid; with ``pyramid_levels: [7]`` it is RoIPool at 7x7, bin for bin. ``grid`` is the output's (height, width).

    ``warp`` is R-CNN's: each RoI, grown so that ``context`` pixels of its surroundings border it once warped,
    resampled bilinearly (RoIAlign, aligned) to ``output_size`` x ``output_size``; on the ``image`` backbone's
    stride-1 level these are the crops R-CNN's network classifies (beyond the image: the padding's mean colour)."""

    def __init__(self, in_strides: Sequence[int], type: str = "roi_align", output_size: int = 7,
                 sampling_ratio: int = 2, strides: Sequence[int] | None = None,
                 roi_strides: Sequence[int] | None = None, aligned: bool = False,
                 pyramid_levels: Sequence[int] | None = None, context: float = 0.0):
        super().__init__()
        strides = list(roi_strides or in_strides) if strides is None else list(strides)
        missing = [s for s in strides if s not in in_strides]
        if missing:
            raise ValueError(f"roi pooler: strides {missing} are not among the feature strides {list(in_strides)}")
        if type not in ("roi_align", "roi_pool", "spp", "warp"):
            raise ValueError(f"roi pooler: type must be roi_align, roi_pool, spp or warp, got '{type}'")
        if type == "warp" and not 0 <= context < output_size / 2:
            raise ValueError(f"roi pooler: warp's context must be in [0, output_size / 2), got {context}")
        self.context = float(context)
        if (type == "spp") != (pyramid_levels is not None):
            raise ValueError("roi pooler: pyramid_levels (the grids, e.g. [1, 2, 3, 6]) go with type spp, and only "
                             f"with it; got type {type}, pyramid_levels {pyramid_levels}")
        if pyramid_levels is not None and (not pyramid_levels or any(int(n) < 1 for n in pyramid_levels)):
            raise ValueError(f"roi pooler: spp's pyramid_levels must be grid sizes of 1 or more, got "
                             f"{list(pyramid_levels)}")
        self.pyramid = [int(n) for n in pyramid_levels] if pyramid_levels is not None else None
        logs = [math.log2(s) for s in strides]
        if len(strides) > 1 and logs != list(range(int(logs[0]), int(logs[0]) + len(logs))):
            raise ValueError(f"roi pooler: several levels must have strides doubling from one to the next, got {strides}")
        self.type = type
        self.indices = [list(in_strides).index(s) for s in strides]
        self.strides = strides
        self.output_size = output_size
        self.sampling_ratio = sampling_ratio
        self.aligned = bool(aligned)
        self.grid = (1, sum(n * n for n in self.pyramid)) if self.pyramid else (output_size, output_size)
        self.levels = LevelMapper(int(logs[0]), int(logs[-1])) if len(strides) > 1 else None

    def forward(self, features: Sequence[torch.Tensor], rois: list[torch.Tensor]) -> torch.Tensor:
        batch = torch.cat([torch.full_like(r[:, :1], i) for i, r in enumerate(rois)])
        indexed = torch.cat([batch, torch.cat(rois)], dim=1)  # (R, 5): image index, x1, y1, x2, y2
        if self.levels is None:
            return self._pool(features[self.indices[0]], indexed, self.strides[0])
        level = self.levels(rois)
        first = features[self.indices[0]]
        out = first.new_zeros(indexed.shape[0], first.shape[1], *self.grid)
        for k, (i, stride) in enumerate(zip(self.indices, self.strides)):
            chosen = torch.nonzero(level == k).squeeze(1)
            out[chosen] = self._pool(features[i], indexed[chosen], stride).to(out.dtype)
        return out

    def _pool(self, feature: torch.Tensor, rois: torch.Tensor, stride: int) -> torch.Tensor:
        if self.type == "warp":
            grown = self.output_size / (self.output_size - 2 * self.context)
            centres, halves = (rois[:, 1:3] + rois[:, 3:5]) / 2, (rois[:, 3:5] - rois[:, 1:3]) / 2 * grown
            rois = torch.cat([rois[:, :1], centres - halves, centres + halves], dim=1)
            return roi_align(feature, rois.to(feature.dtype), self.output_size, 1.0 / stride, 2, aligned=True)
        if self.type in ("spp", "roi_pool"):  # torchvision's roi_pool has no autocast rule: pooled in the RoIs' fp32
            dtype, feature = feature.dtype, feature.to(rois.dtype)
            if self.type == "roi_pool":
                return roi_pool(feature, rois, self.output_size, 1.0 / stride).to(dtype)
            bins = [roi_pool(feature, rois, n, 1.0 / stride).flatten(2) for n in self.pyramid]
            return torch.cat(bins, dim=2).unsqueeze(2).to(dtype)
        return roi_align(feature, rois, self.output_size, 1.0 / stride, self.sampling_ratio, aligned=self.aligned)


@HEADS.register("roi_box_head")
class RoIBoxHead(nn.Module):
    """Training: ground truths join the proposals (``add_gt``), the ``matcher`` labels them
    (foreground IoU >= 0.5; background [bg_min_iou, 0.5)), the ``sampler`` picks e.g. 128 per image
    at 25% foreground; losses ``roi/cls`` (softmax CE) and ``roi/loc`` (smooth L1 on the
    foreground's own class offsets), both divided by the sampled count. Inference: class-specific
    boxes, per-class NMS (``test``).

    ``svm`` adds R-CNN's per-class linear SVMs on the box features (zoo.models.heads.svm.ClassSVMs): loss
    ``roi/svm`` on the ground truths against hard-mined proposals of IoU < ``negative_iou``, the features held fixed;
    ``test.scoring: svm`` scores detections with them. Train them as a stage of their own
    (``trainer/stages=rcnn_svm``)."""

    def __init__(self, in_channels: Sequence[int], in_strides: Sequence[int], num_classes: int, pooler: Mapping,
                 box_features: Mapping, matcher: Mapping, sampler: Mapping, coder: Mapping, add_gt: bool = True,
                 smooth_l1_beta: float = 1.0, test: Mapping | None = None, roi_strides: Sequence[int] | None = None,
                 svm: Mapping | None = None):
        super().__init__()
        self.pooler = RoIPooler(in_strides, **dict(pooler), roi_strides=roi_strides)
        channels = {in_channels[i] for i in self.pooler.indices}
        if len(channels) != 1:
            raise ValueError(f"roi_box_head: pooled levels have different channels {sorted(channels)}")
        self.features = HEADS.build(box_features, in_channels=channels.pop(), resolution=self.pooler.grid)
        self.num_classes = num_classes
        self.cls = nn.Linear(self.features.out_dim, num_classes + 1)
        self.box = nn.Linear(self.features.out_dim, (num_classes + 1) * 4)  # background row kept, as torchvision
        nn.init.normal_(self.cls.weight, std=0.01)
        nn.init.normal_(self.box.weight, std=0.001)
        nn.init.zeros_(self.cls.bias)
        nn.init.zeros_(self.box.bias)
        self.matcher = MATCHERS.build(matcher)
        self.sampler = SAMPLERS.build(sampler)
        self.coder = CODERS.build(coder)
        self.add_gt = add_gt
        self.beta = smooth_l1_beta
        self.test_cfg = build_test_settings(test, DEFAULT_TEST)
        self.scoring = self.test_cfg.pop("scoring")
        self.svm = ClassSVMs(self.features.out_dim, num_classes, **dict(svm)) if svm is not None else None
        if self.scoring not in ("softmax", "svm") or self.scoring == "svm" and self.svm is None:
            raise ValueError(f"roi_box_head: test.scoring must be softmax, or svm with an svm node; got "
                             f"{self.scoring!r}{'' if self.svm is not None else ' and no svm'}")

    def forward(self, features: Sequence[torch.Tensor], proposals: list[torch.Tensor],
                image_sizes: Sequence[tuple[int, int]], targets: Sequence[dict[str, torch.Tensor]] | None = None):
        """``image_sizes``: each image's before padding (detections are clipped to it)."""
        if self.training:
            if targets is None:
                raise ValueError("roi_box_head: training forward needs targets")
            rois, labels, box_targets = self._sample(features, proposals, targets)
        else:
            rois = proposals
        scores, deltas, vectors = self._predict(features, rois, with_vectors=True)
        if self.training:
            losses = self._losses(scores, deltas, torch.cat(labels), torch.cat(box_targets))
            if self.svm is not None and self.svm.linear.weight.requires_grad:  # a stage that trains them
                losses["svm"] = self._svm_loss(features, proposals, targets)
            return losses
        probs = (torch.sigmoid(self.svm(vectors.float())) if self.scoring == "svm" else
                 scores.float().softmax(dim=-1)[:, 1:])
        return self._detections(probs, deltas, rois, image_sizes)

    def _predict(self, features, rois, with_vectors: bool = False):
        # RoIs stay fp32 under autocast: bf16 coordinates would be off by up to 4 px past 512.
        pooled = self.pooler(features, [r.float() for r in rois])
        vectors = self.features(pooled)
        return (self.cls(vectors), self.box(vectors), vectors) if with_vectors else (self.cls(vectors), self.box(vectors))

    def _svm_loss(self, features, proposals, targets) -> torch.Tensor:
        """The SVMs' rows: each image's ground truths (positives of their class) and up to ``svm.negatives`` of its
        proposals overlapping every ground truth less than ``svm.negative_iou`` (negatives); features fixed."""
        rois, labels = [], []
        for boxes, target in zip(proposals, targets):
            gt = target["boxes"].to(boxes.dtype)
            keep = ~target["ignore"] if "ignore" in target else torch.ones_like(target["labels"], dtype=torch.bool)
            overlap = box_iou(boxes, gt).amax(dim=1) if len(gt) else boxes.new_zeros(len(boxes))
            negatives = boxes[overlap < self.svm.negative_iou]
            negatives = negatives[torch.randperm(len(negatives), device=boxes.device)[: self.svm.negatives]]
            rois.append(torch.cat([gt[keep], negatives]))
            labels.append(torch.cat([target["labels"][keep], target["labels"].new_full((len(negatives),), -1)]))
        with torch.no_grad():
            vectors = self.features(self.pooler(features, [r.float() for r in rois]))
        return self.svm.loss(vectors, torch.cat(labels))

    def _sample(self, features, proposals, targets):
        candidates, labels, box_targets = zip(*(self._label(p, t) for p, t in zip(proposals, targets)))
        losses = [None] * len(candidates)
        if self.sampler.needs_losses:  # OHEM: rank every candidate by its loss, read-only
            training = self.features.training
            self.features.eval()  # no dropout in the ranking pass (vgg_fc)
            with torch.no_grad():
                scores, deltas = self._predict(features, list(candidates))
                cls, loc = self._roi_losses(scores, deltas, torch.cat(labels), torch.cat(box_targets))
                losses = (cls + loc).split([c.shape[0] for c in candidates])
            self.features.train(training)
        chosen = [torch.cat(self.sampler(label, loss, boxes))
                  for label, loss, boxes in zip(labels, losses, candidates)]
        return ([c[k] for c, k in zip(candidates, chosen)], [lb[k] for lb, k in zip(labels, chosen)],
                [t[k] for t, k in zip(box_targets, chosen)])

    def _label(self, proposals, target):
        """Candidates (proposals, plus the ground truths with ``add_gt``), their labels (0 background,
        c + 1 for class c, -1 ignored) and box targets against their matched ground truth (zero unless
        foreground)."""
        gt = target["boxes"]
        candidates = torch.cat([proposals, gt.to(proposals.dtype)]) if self.add_gt else proposals
        return (candidates, *assign_image(candidates, target, self.matcher, self.coder))

    def _roi_losses(self, scores, deltas, labels, box_targets):
        """Per RoI: softmax CE, and smooth L1 on the foreground's own class offsets (0 elsewhere)."""
        cls = F.cross_entropy(scores.float(), labels.clamp(min=0), reduction="none")
        own = deltas.view(deltas.shape[0], -1, 4)[torch.arange(labels.numel(), device=labels.device),
                                                  labels.clamp(min=0)].float()
        loc = F.smooth_l1_loss(own, box_targets, beta=self.beta, reduction="none").sum(dim=1)
        return cls, loc * (labels > 0)

    def _losses(self, scores, deltas, labels, box_targets):
        cls, loc = self._roi_losses(scores, deltas, labels, box_targets)
        count = max(labels.numel(), 1)
        return {"cls": cls.sum() / count, "loc": loc.sum() / count}

    def _detections(self, probs, deltas, rois, image_sizes) -> list[dict[str, Any]]:
        """``probs`` (R, C) per class, background left out."""
        deltas = deltas.float().view(deltas.shape[0], -1, 4)[:, 1:]
        out, start = [], 0
        for image_rois, size in zip(rois, image_sizes):
            end = start + image_rois.shape[0]
            boxes = self.coder.decode(deltas[start:end], image_rois[:, None, :].float())
            boxes = clip_boxes_to_image(boxes, size)
            out.append(multiclass_nms(boxes, probs[start:end], **self.test_cfg))
            start = end
        return out
