"""The test-time-augmentation wrapper: any detector, several views of the batch, one merge."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import clip_boxes_to_image

from zoo.registry import MERGES
from zoo.structures import per_image_sizes


@dataclass(frozen=True)
class View:
    """One view of the batch: ``scale`` a ratio of the batch's size (one number, or [h, w] for an
    aspect-distorted view) or ``size`` an absolute [h, w]; ``flip`` horizontally. Its detections,
    mapped back to the batch's pixels, are kept only if the box's larger side is above
    ``keep_larger_side_above`` and its smaller side below ``keep_smaller_side_below`` (RefineDet's
    multi-scale test: large objects from shrunk views, small ones from enlarged views)."""

    scale: float | tuple[float, float] | None = None
    size: tuple[int, int] | None = None
    flip: bool = False
    keep_larger_side_above: float | None = None
    keep_smaller_side_below: float | None = None

    @classmethod
    def from_config(cls, node: Mapping, index: int) -> View:
        node = dict(node)
        unknown = sorted(set(node) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"tta.views[{index}]: unknown key(s) {unknown}; accepted: {sorted(cls.__dataclass_fields__)}")
        scale, size = node.get("scale"), node.get("size")
        if (scale is None) == (size is None):
            raise ValueError(f"tta.views[{index}]: give exactly one of 'scale' (a ratio or [h, w] ratios) "
                             f"or 'size' ([h, w] pixels), got {node}")
        if scale is not None:
            node["scale"] = tuple(float(s) for s in scale) if isinstance(scale, Sequence) else float(scale)
            values = node["scale"] if isinstance(node["scale"], tuple) else (node["scale"],)
            if len(values) not in (1, 2) or min(values) <= 0:
                raise ValueError(f"tta.views[{index}]: scale must be a positive ratio or [h, w] ratios, got {scale}")
        if size is not None:
            node["size"] = tuple(int(s) for s in size)
            if len(node["size"]) != 2 or min(node["size"]) < 1:
                raise ValueError(f"tta.views[{index}]: size must be [h, w] in pixels, got {size}")
        return cls(**node)

    def shape(self, height: int, width: int) -> tuple[int, int]:
        if self.size is not None:
            return self.size
        sy, sx = self.scale if isinstance(self.scale, tuple) else (self.scale, self.scale)
        return max(1, round(height * sy)), max(1, round(width * sx))

    def keep(self, boxes: torch.Tensor) -> torch.Tensor:
        sides = torch.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], dim=1)
        keep = torch.ones(len(boxes), dtype=torch.bool, device=boxes.device)
        if self.keep_larger_side_above is not None:
            keep &= sides.max(dim=1).values > self.keep_larger_side_above
        if self.keep_smaller_side_below is not None:
            keep &= sides.min(dim=1).values < self.keep_smaller_side_below
        return keep


class TTADetector(nn.Module):
    """Eval-only wrapper with the detector's forward contract: each view resizes (bilinear) and/or
    flips the normalised batch, the detector runs on it, its boxes are mapped back to the batch's
    pixels and filtered by the view's size rule; per image the views' detections are merged by
    ``merge`` (a registered merge: nms, soft_nms, box_voting, soft_box_voting) and the
    ``max_detections`` best kept. Views resize the already-resized batch, not the original image."""

    def __init__(self, model: nn.Module, views: Sequence[View], merge: Mapping, max_detections: int = 200):
        super().__init__()
        if not views:
            raise ValueError("tta: needs at least one view")
        self.model = model
        self.views = list(views)
        self.merge = MERGES.build(merge)
        self.max_detections = max_detections

    def forward(self, images: torch.Tensor, targets=None,
                image_sizes: Sequence[tuple[int, int]] | None = None) -> list[dict[str, torch.Tensor]]:
        """Each view sees the whole padded canvas (a flipped pad sits on the left, so no per-image size
        carries over); ``image_sizes`` clips every view's boxes, mapped back, to each image before merging."""
        if self.training or targets is not None:
            raise ValueError("tta: test-time augmentation is for inference only (call .eval(), pass no targets)")
        height, width = images.shape[-2:]
        channels_last = images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous()
        collected: list[list[tuple[torch.Tensor, ...]]] = [[] for _ in range(len(images))]
        for view in self.views:
            h, w = view.shape(height, width)
            x = images if (h, w) == (height, width) else F.interpolate(images, size=(h, w), mode="bilinear",
                                                                       align_corners=False)
            x = x.flip(-1) if view.flip else x
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            for found, out, size in zip(collected, self.model(x), per_image_sizes(images, image_sizes)):
                boxes = out["boxes"].float()
                if view.flip:
                    boxes = torch.stack([w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0], boxes[:, 3]], dim=1)
                boxes = clip_boxes_to_image(boxes * boxes.new_tensor([width / w, height / h, width / w, height / h]),
                                            size)
                keep = view.keep(boxes)
                found.append((boxes[keep], out["scores"][keep].float(), out["labels"][keep]))
        results = []
        for found in collected:
            boxes, scores, labels = (torch.cat(parts) for parts in zip(*found))
            merged = self.merge(boxes, scores, labels)
            results.append({k: v[: self.max_detections] for k, v in merged.items()})
        return results


def build_tta(model: nn.Module, node: Mapping | None) -> nn.Module:
    """``model`` wrapped by the ``tta`` config node (``views``, ``merge``, ``max_detections``);
    no node or no views: the model itself."""
    if not node or not node.get("views"):
        return model
    node = dict(node)
    unknown = sorted(set(node) - {"name", "views", "merge", "max_detections"})
    if unknown:
        raise ValueError(f"tta: unknown key(s) {unknown}; accepted: ['max_detections', 'merge', 'name', 'views']")
    views = [View.from_config(v, i) for i, v in enumerate(node["views"])]
    return TTADetector(model, views, node.get("merge") or {"type": "nms"}, int(node.get("max_detections", 200)))
