"""Region proposal network (Ren et al. 2015): objectness and box offsets per anchor, then proposals."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import clip_boxes_to_image, remove_small_boxes

from zoo.models.heads.ssd_head import flatten_levels
from zoo.models.postprocess import build_test_settings
from zoo.ops.class_nms import class_nms
from zoo.registry import CODERS, HEADS, MATCHERS, PRIORS, SAMPLERS
from zoo.task.assign import assign_targets

PROPOSAL_DEFAULTS = {
    "train": {"pre_nms_top_n": 12000, "post_nms_top_n": 2000, "nms_threshold": 0.7, "min_size": 0.0},
    "test": {"pre_nms_top_n": 6000, "post_nms_top_n": 300, "nms_threshold": 0.7, "min_size": 0.0},
}


class RPNConvHead(nn.Module):
    """A 3x3 conv + ReLU, then 1x1 convs for one objectness logit and 4 offsets per anchor; shared
    by every level (so every level needs the same channels and anchors per cell)."""

    def __init__(self, in_channels: Sequence[int], num_anchors: Sequence[int], conv_channels: int | None = None):
        super().__init__()
        if len(set(in_channels)) != 1 or len(set(num_anchors)) != 1:
            raise ValueError(f"rpn: one head serves every level, so the levels need equal channels and anchors per "
                             f"cell; got channels {list(in_channels)} and anchors {list(num_anchors)}")
        channels, anchors = in_channels[0], num_anchors[0]
        conv_channels = conv_channels or channels
        self.conv = nn.Conv2d(channels, conv_channels, 3, padding=1)
        self.objectness = nn.Conv2d(conv_channels, anchors, 1)
        self.box = nn.Conv2d(conv_channels, anchors * 4, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)

    def forward(self, features: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = [F.relu(self.conv(f)) for f in features]
        logits = flatten_levels([self.objectness(h) for h in hidden], 1).squeeze(-1)
        deltas = flatten_levels([self.box(h) for h in hidden], 4)
        return logits, deltas


@HEADS.register("rpn")
class RPN(nn.Module):
    """Anchors (``priors``), a conv head, training targets (``matcher`` 0.7/0.3 keeping each ground
    truth's best anchors, ``sampler`` 256 at up to 1:1) and proposals: per level the
    ``pre_nms_top_n`` best, decoded, clipped, small ones removed, NMS across levels kept apart,
    then the ``post_nms_top_n`` best per image (``train`` and ``test`` settings).

    ``border``: in training, anchors reaching past the image by more than this many pixels are
    ignored (the paper's 0); null keeps them. Losses ``rpn/obj`` (binary CE) and ``rpn/loc``
    (smooth L1 on positives), both divided by the sampled count."""

    def __init__(self, in_channels: Sequence[int], in_strides: Sequence[int], priors: Mapping, matcher: Mapping,
                 sampler: Mapping, coder: Mapping, conv_channels: int | None = None, border: float | None = 0.0,
                 smooth_l1_beta: float = 1.0 / 9, train: Mapping | None = None, test: Mapping | None = None):
        super().__init__()
        # Anchor centres on the feature strides, whatever the image size (not image / feature size).
        self.priors = PRIORS.build({"steps": list(in_strides), **dict(priors)})
        self.anchors_per_level = self.priors.num_anchors_per_level()
        if len(self.anchors_per_level) != len(in_channels):
            raise ValueError(f"rpn: the priors describe {len(self.anchors_per_level)} levels but the features are "
                             f"{len(in_channels)} (strides {list(in_strides)})")
        self.head = RPNConvHead(in_channels, self.anchors_per_level, conv_channels)
        self.matcher = MATCHERS.build(matcher)
        self.sampler = SAMPLERS.build(sampler)
        self.coder = CODERS.build(coder)
        self.border = border
        self.beta = smooth_l1_beta
        self.settings = {mode: build_test_settings(node, PROPOSAL_DEFAULTS[mode], f"model.rpn.{mode}")
                         for mode, node in (("train", train), ("test", test))}

    def forward(self, features: Sequence[torch.Tensor], image_size: tuple[int, int],
                image_sizes: Sequence[tuple[int, int]], targets: Sequence[dict[str, torch.Tensor]] | None = None,
                max_proposals: int | None = None):
        """Returns (proposals, losses): B tensors (N_i, 4) and a dict (empty in eval). ``image_size`` is the
        padded batch's (it places the anchors), ``image_sizes`` each image's before padding (proposals are
        clipped to it, and the border rule applies at its edges). ``max_proposals`` replaces the post-NMS
        top-N (proposal recall at 1000 of a model that keeps 300)."""
        logits, deltas = self.head(features)
        sizes = [f.shape[-2:] for f in features]
        anchors = self.priors(sizes, image_size, logits.device)
        cells = [int(h) * int(w) * a for (h, w), a in zip(sizes, self.anchors_per_level)]
        settings = self.settings["train" if self.training else "test"]
        if max_proposals is not None:
            settings = {**settings, "post_nms_top_n": int(max_proposals)}
        with torch.no_grad():
            boxes = self.coder.decode(deltas.detach().float(), anchors)
            proposals = [self._select(b, s, cells, size, settings)
                         for b, s, size in zip(boxes, logits.detach().float(), image_sizes)]
        losses = self._losses(logits, deltas, anchors, targets, image_sizes) if self.training else {}
        return proposals, losses

    def _select(self, boxes: torch.Tensor, scores: torch.Tensor, cells: list[int], image_size: tuple[int, int],
                settings: Mapping[str, Any]) -> torch.Tensor:
        keep, levels = [], []
        start = 0
        for level, count in enumerate(cells):
            top = scores[start:start + count].topk(min(settings["pre_nms_top_n"], count)).indices + start
            keep.append(top)
            levels.append(torch.full_like(top, level))
            start += count
        keep, levels = torch.cat(keep), torch.cat(levels)
        boxes, scores = clip_boxes_to_image(boxes[keep], image_size), scores[keep]
        valid = remove_small_boxes(boxes, max(settings["min_size"], 1e-3))
        boxes, scores, levels = boxes[valid], scores[valid], levels[valid]
        kept = class_nms(boxes, scores, levels, settings["nms_threshold"])[: settings["post_nms_top_n"]]
        return boxes[kept]

    def _losses(self, logits, deltas, anchors, targets, image_sizes):
        if targets is None:
            raise ValueError("rpn: training forward needs targets")
        inside = None
        if self.border is not None:  # matched among the inside anchors only, as the paper's code does
            limits = anchors.new_tensor([[w, h] for h, w in image_sizes])[:, None, :] + self.border  # (B, 1, 2)
            inside = (anchors[None, :, :2] >= -self.border).all(-1) & (anchors[None, :, 2:] <= limits).all(-1)
        labels, box_targets = assign_targets(anchors, targets, self.matcher, self.coder, binary=True, valid=inside)
        flat_logits, flat_deltas = logits.flatten(), deltas.reshape(-1, 4)
        flat_labels, flat_targets = labels.flatten(), box_targets.reshape(-1, 4)
        losses = [None] * labels.shape[0]
        if self.sampler.needs_losses:  # OHEM: rank every anchor by its loss, read-only
            with torch.no_grad():
                obj, loc = self._anchor_losses(flat_logits, flat_deltas, flat_labels, flat_targets)
                losses = (obj + loc).view_as(labels)
        sampled_pos, sampled_neg = [], []
        for i, (image_labels, image_losses) in enumerate(zip(labels, losses)):
            pos, neg = self.sampler(image_labels, image_losses, anchors)
            sampled_pos.append(pos + i * labels.shape[1])
            sampled_neg.append(neg + i * labels.shape[1])
        sampled = torch.cat(sampled_pos + sampled_neg)
        obj, loc = self._anchor_losses(flat_logits[sampled], flat_deltas[sampled], flat_labels[sampled],
                                       flat_targets[sampled])
        count = max(sampled.numel(), 1)
        return {"obj": obj.sum() / count, "loc": loc.sum() / count}

    def _anchor_losses(self, logits, deltas, labels, box_targets):
        """Per anchor: binary CE on objectness, and smooth L1 on the positives' offsets (0 elsewhere)."""
        obj = F.binary_cross_entropy_with_logits(logits.float(), (labels > 0).float(), reduction="none")
        loc = F.smooth_l1_loss(deltas.float(), box_targets, beta=self.beta, reduction="none").sum(dim=1)
        return obj, loc * (labels > 0)
