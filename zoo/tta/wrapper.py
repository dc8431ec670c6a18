"""The test-time-augmentation wrapper: any detector, several views of the batch, one merge."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_area, clip_boxes_to_image

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
        if not isinstance(node, Mapping):
            raise ValueError(f"tta.views[{index}]: a view is a mapping such as {{scale: 1.0, flip: true}}, got {node!r}")
        node = dict(node)
        unknown = sorted(set(node) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"tta.views[{index}]: unknown key(s) {unknown}; accepted: {sorted(cls.__dataclass_fields__)}")
        scale, size = node.get("scale"), node.get("size")
        if (scale is None) == (size is None):
            raise ValueError(f"tta.views[{index}]: give exactly one of 'scale' (a ratio or [h, w] ratios) "
                             f"or 'size' ([h, w] pixels), got {node}")
        if scale is not None:
            values = _numbers(scale, float)
            if values is None or len(values) not in (1, 2) or min(values) <= 0:
                raise ValueError(f"tta.views[{index}]: scale must be a positive ratio or [h, w] ratios, got {scale}")
            node["scale"] = values[0] if len(values) == 1 else values
        if size is not None:
            node["size"] = _numbers(size, int) if isinstance(size, Sequence) else None
            if node["size"] is None or len(node["size"]) != 2 or min(node["size"]) < 1:
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
    """Eval-only wrapper with the detector's forward contract: each view resizes (bilinear) the
    normalised batch and/or mirrors each image within its own width, the detector runs on it, its
    boxes are mapped back to the batch's pixels and filtered by the view's size rule; per image the
    views' detections are merged by ``merge`` (a registered merge: nms, soft_nms, box_voting,
    soft_box_voting) and the ``max_detections`` best kept. Views resize the already-resized batch,
    not the original image. ``view_test`` overrides the detector's own test settings (``test_cfg``)
    while the views run: CornerNet's test suppresses once, over every view's pairs (``{nms: none}``)."""

    def __init__(self, model: nn.Module, views: Sequence[View], merge: Mapping | Callable, max_detections: int = 200,
                 view_test: Mapping[str, Any] | None = None):
        super().__init__()
        if not views:
            raise ValueError("tta: needs at least one view")
        self.model = model
        self.views = list(views)
        self.merge = merge if callable(merge) else MERGES.build(merge)
        self.max_detections = max_detections
        self.view_test = dict(view_test or {})
        if self.view_test:
            settings = getattr(model, "test_cfg", None)
            if not isinstance(settings, dict):
                raise ValueError(f"tta.view_test: {type(model).__name__} has no test settings (test_cfg) to override")
            unknown = sorted(set(self.view_test) - set(settings))
            if unknown:
                raise ValueError(f"tta.view_test: unknown key(s) {unknown} for {type(model).__name__}; "
                                 f"accepted: {sorted(settings)}")

    def forward(self, images: torch.Tensor, targets=None, image_sizes: Sequence[tuple[int, int]] | None = None,
                proposals: Sequence[torch.Tensor] | None = None) -> list[dict[str, torch.Tensor]]:
        """Every image keeps its place (top-left, padding bottom/right) in every view, so the detector
        sees each as in training and ``image_sizes``, scaled, still describes it; boxes mapped back are
        clipped to each image and empty ones dropped before merging. Given ``proposals`` (a detector of given
        proposals) go into each view as its image does: scaled, and mirrored in a flipped view."""
        if self.training or targets is not None:
            raise ValueError("tta: test-time augmentation is for inference only (call .eval(), pass no targets)")
        sizes = per_image_sizes(images, image_sizes)
        channels_last = images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous()
        collected: list[list[tuple[torch.Tensor, ...]]] = [[] for _ in range(len(images))]
        with self._view_settings():
            for index, view in enumerate(self.views):
                self._run_view(view, index, images, sizes, channels_last, collected, proposals)
        results = []
        for found in collected:
            boxes, scores, labels = (torch.cat(parts) for parts in zip(*found))
            merged = self.merge(boxes, scores, labels)
            results.append({k: v[: self.max_detections] for k, v in merged.items()})
        return results

    def _run_view(self, view: View, index: int, images: torch.Tensor, sizes: list[tuple[int, int]],
                  channels_last: bool, collected: list[list[tuple[torch.Tensor, ...]]],
                  proposals: Sequence[torch.Tensor] | None = None) -> None:
        """The detector on one view; each image's boxes, mapped back and kept by the view's rules, are
        appended to its list in ``collected``."""
        height, width = images.shape[-2:]
        h, w = view.shape(height, width)
        if view.size is not None and any(size != (height, width) for size in sizes):
            raise ValueError(f"tta.views[{index}]: a 'size' view stretches the padded batch, so an image smaller "
                             "than the batch would be distorted by its neighbours; use 'scale' views with "
                             "keep-ratio data")
        sy, sx = h / height, w / width
        view_sizes = [(max(1, round(ih * sy)), max(1, round(iw * sx))) for ih, iw in sizes]
        x = images if (h, w) == (height, width) else F.interpolate(images, size=(h, w), mode="bilinear",
                                                                   align_corners=False)
        x = _mirror_each(x, view_sizes) if view.flip else x
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        given = {}
        if proposals is not None:
            given["proposals"] = [_into_view(p.float() * p.new_tensor([sx, sy, sx, sy]).float(), vw, view.flip)
                                  for p, (_, vw) in zip(proposals, view_sizes)]
        outputs = self.model(x, image_sizes=view_sizes, **given)
        for found, out, (_, vw), size in zip(collected, outputs, view_sizes, sizes):
            boxes = _into_view(out["boxes"].float(), vw, view.flip)  # a mirror is its own inverse
            boxes = clip_boxes_to_image(boxes / boxes.new_tensor([sx, sy, sx, sy]), size)
            keep = view.keep(boxes) & (box_area(boxes) > 0)  # a box in the padding is clipped to nothing
            found.append((boxes[keep], out["scores"][keep].float(), out["labels"][keep]))

    @contextmanager
    def _view_settings(self):
        if not self.view_test:
            yield
            return
        own = self.model.test_cfg
        self.model.test_cfg = {**own, **self.view_test}
        try:
            yield
        finally:
            self.model.test_cfg = own


def _into_view(boxes: torch.Tensor, width: int, flip: bool) -> torch.Tensor:
    """Boxes mirrored within an image ``width`` wide when ``flip``; as they are otherwise."""
    if not flip:
        return boxes
    return torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1)


def _mirror_each(images: torch.Tensor, sizes: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Each image mirrored within its own width (its padding stays on the right, where the detector
    saw padding in training); the whole tensor at once when every image fills the batch."""
    width = images.shape[-1]
    if all(w == width for _, w in sizes):
        return images.flip(-1)
    mirrored = images.clone()
    for i, (_, w) in enumerate(sizes):
        mirrored[i, :, :, :w] = images[i, :, :, :w].flip(-1)
    return mirrored


def _numbers(value, kind) -> tuple | None:
    """A number or a list of numbers as a tuple of ``kind``; None when it is neither."""
    values = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    try:
        return tuple(kind(v) for v in values)
    except (TypeError, ValueError):
        return None


TTA_KEYS = ("name", "views", "merge", "max_detections", "view_test")


def parse_tta(node: Mapping | None) -> tuple[list[View], object, int, dict] | None:
    """The ``tta`` config node (``views``, ``merge``, ``max_detections``, ``view_test``) checked and
    built: its views, its merge, how many detections to keep and the detector test settings the views
    run with; None for no node. A node that names no view is an error, not a silent plain test."""
    if node is None:
        return None
    if not isinstance(node, Mapping):
        raise ValueError(f"tta: expected a mapping with 'views' (the contents of a conf/tta file), got {node!r}")
    unknown = sorted(set(node) - set(TTA_KEYS))
    if unknown:
        raise ValueError(f"tta: unknown key(s) {unknown}; accepted: {sorted(TTA_KEYS)}")
    views = node.get("views")
    if not views or isinstance(views, (str, Mapping)) or not isinstance(views, Sequence):
        raise ValueError(f"tta{'.' + node['name'] if node.get('name') else ''}: 'views' must be a non-empty list of "
                         f"views such as [{{scale: 1.0}}, {{scale: 1.0, flip: true}}], got {views!r}")
    max_detections = node.get("max_detections", 200)
    if isinstance(max_detections, bool) or not isinstance(max_detections, int) or max_detections < 1:
        raise ValueError(f"tta.max_detections must be an integer >= 1, got {max_detections!r}")
    view_test = node.get("view_test") or {}
    if not isinstance(view_test, Mapping):
        raise ValueError(f"tta.view_test must map detector test settings to values (e.g. {{nms: none}}), "
                         f"got {view_test!r}")
    views = [View.from_config(v, i) for i, v in enumerate(views)]
    return views, MERGES.build(node.get("merge") or {"type": "nms"}), max_detections, dict(view_test)


def build_tta(model: nn.Module, node: Mapping | None) -> nn.Module:
    """``model`` wrapped by the ``tta`` config node (see ``parse_tta``); no node: the model itself."""
    parsed = parse_tta(node)
    return model if parsed is None else TTADetector(model, *parsed)
