"""Prior (default box / anchor) generators.

Every generator returns the priors of all levels concatenated in the order heads lay out their
outputs: level by level, row-major over the cells, then the anchors of a cell. Boxes are xyxy in
input pixels. The latest results are cached per (feature sizes, image size, device, dtype).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch

from zoo.registry import PRIORS


CLIP_MODES = ("none", "size", "centre_size", "box")
CACHE_SIZE = 8  # padded batch sizes vary under keep-ratio resizing: keep the recent ones, not every one seen


class _CachedPriors:
    """``clip``: 'none'; 'size' caps each prior's width and height at the image's (torchvision's rule);
    'centre_size' also clamps its centre into the image (the SSD ports clamp centre and size, ssd.pytorch's and
    RefineDet.PyTorch's); 'box' clips the corners to the image."""

    steps: list[float] | None = None
    centre_offset: float = 0.5  # centres at (i + offset) * step: 0.5 mid-cell, 0.0 on cell corners (torchvision)
    round_corners: bool = False  # corners of the cell-independent shape rounded to whole pixels (torchvision)
    floor_steps: bool = False  # steps of image size // feature size in whole pixels, ``steps`` aside (torchvision)

    def __init__(self, clip: str) -> None:
        if clip not in CLIP_MODES:
            raise ValueError(f"priors: clip must be one of {CLIP_MODES}, got '{clip}'")
        self.clip = clip
        self._cache: OrderedDict[tuple, torch.Tensor] = OrderedDict()

    def __call__(self, feature_sizes: Sequence[tuple[int, int]], image_size: tuple[int, int],
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
        key = (tuple(map(tuple, feature_sizes)), tuple(image_size), str(device), dtype)
        if torch.compiler.is_exporting():  # traced tensors must not outlive the export in the cache
            return torch.cat([self._level(k, fs, image_size) for k, fs in enumerate(feature_sizes)]).to(device, dtype)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        levels = [self._level(k, fs, image_size) for k, fs in enumerate(feature_sizes)]
        self._cache[key] = torch.cat(levels).to(device=device, dtype=dtype)
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return self._cache[key]

    def _level(self, k: int, feature_size: tuple[int, int], image_size: tuple[int, int]) -> torch.Tensor:
        fh, fw = feature_size
        height, width = image_size
        shapes = self.cell_shapes(k, image_size)  # (A, 2) widths and heights in pixels
        if self.clip in ("size", "centre_size"):
            shapes = torch.minimum(shapes, torch.tensor([width, height], dtype=torch.float64))
        if self.floor_steps:
            step_y, step_x = height // fh, width // fw
        elif self.steps is not None:
            step_y, step_x = self.steps[k], self.steps[k]
        else:
            step_y, step_x = height / fh, width / fw
        cy = (torch.arange(fh, dtype=torch.float64) + self.centre_offset) * step_y
        cx = (torch.arange(fw, dtype=torch.float64) + self.centre_offset) * step_x
        if self.clip == "centre_size":
            cy, cx = cy.clamp(0, height), cx.clamp(0, width)
        cy, cx = torch.meshgrid(cy, cx, indexing="ij")
        centres = torch.stack([cx, cy], dim=-1).reshape(-1, 1, 2)  # (H*W, 1, 2)
        half = shapes[None] / 2
        corners = torch.cat([-half, half], dim=-1)
        if self.round_corners:
            corners = corners.round()
        boxes = (centres.repeat(1, 1, 2) + corners).reshape(-1, 4)
        if self.clip == "box":
            boxes = torch.stack([boxes[:, 0].clamp(0, width), boxes[:, 1].clamp(0, height),
                                 boxes[:, 2].clamp(0, width), boxes[:, 3].clamp(0, height)], dim=1)
        return boxes.float()

    def num_anchors_per_level(self) -> list[int]:
        raise NotImplementedError

    def cell_shapes(self, level: int, image_size: tuple[int, int]) -> torch.Tensor:
        raise NotImplementedError


@PRIORS.register("ssd_priors")
class SSDPriorGenerator(_CachedPriors):
    """SSD default boxes: scale s_k spaced linearly from ``s_min`` to ``s_max`` over the levels
    (the first level may have its own ``first_scale``, 0.1 for conv4_3), a box per extra aspect
    ratio r and 1/r, and an extra ratio-1 box of scale sqrt(s_k * s_k+1).

    ``scales`` (levels + 1 values) replaces the rule, and ``steps`` (pixels per cell) replaces
    image size / feature size for the centres, as some ports and torchvision configure SSD."""

    def __init__(self, aspect_ratios: Sequence[Sequence[float]], s_min: float = 0.2, s_max: float = 0.9,
                 first_scale: float | None = 0.1, scales: Sequence[float] | None = None,
                 steps: Sequence[float] | None = None, clip: str = "size"):
        self.aspect_ratios = [list(map(float, r)) for r in aspect_ratios]
        levels = len(self.aspect_ratios)
        if scales is None:
            linear = levels - 1 if first_scale is not None else levels
            step = (s_max - s_min) / (linear - 1) if linear > 1 else 0.0
            scales = [s_min + step * i for i in range(linear + 1)]  # one past the last, for sqrt(s_m s_m+1)
            scales = ([first_scale] if first_scale is not None else []) + scales
        if len(scales) != levels + 1:
            raise ValueError(f"ssd_priors: {levels} levels need {levels + 1} scales, got {len(scales)}")
        if steps is not None and len(steps) != levels:
            raise ValueError(f"ssd_priors: {levels} levels need {levels} steps, got {len(steps)}")
        self.scales = [float(v) for v in scales]
        self.steps = None if steps is None else [float(v) for v in steps]
        super().__init__(clip)

    def num_anchors_per_level(self) -> list[int]:
        return [2 + 2 * len(r) for r in self.aspect_ratios]

    def cell_shapes(self, level: int, image_size: tuple[int, int]) -> torch.Tensor:
        height, width = image_size
        s, s_next = self.scales[level], self.scales[level + 1]
        rel = [(s, s), (math.sqrt(s * s_next),) * 2]
        for r in self.aspect_ratios[level]:
            rel += [(s * math.sqrt(r), s / math.sqrt(r)), (s / math.sqrt(r), s * math.sqrt(r))]
        return torch.tensor(rel, dtype=torch.float64) * torch.tensor([width, height], dtype=torch.float64)


@PRIORS.register("anchors")
class AnchorGenerator(_CachedPriors):
    """Anchors of fixed pixel sizes per level (RefineDet, RPN, FPN): every size x every ratio,
    ratio = height / width, area kept at size**2. ``steps`` (pixels per cell, the feature strides)
    places the centres; without it, image size / feature size does.

    torchvision's convention (importing its detectors): ``centre_offset: 0.0`` puts the centres on the cells'
    top-left corners, ``round_corners: true`` rounds each anchor's corners around its centre to whole pixels,
    ``floor_steps: true`` takes the step as image size // feature size (not the stride), and ``order: ratio_major`` lists a cell's
    anchors ratio by ratio (the sizes inside), where zoo's default lists them size by size."""

    ORDERS = ("size_major", "ratio_major")

    def __init__(self, sizes: Sequence[Sequence[float]], ratios: Sequence[float] = (0.5, 1.0, 2.0),
                 clip: str = "none", steps: Sequence[float] | None = None, centre_offset: float = 0.5,
                 round_corners: bool = False, floor_steps: bool = False, order: str = "size_major"):
        if order not in self.ORDERS:
            raise ValueError(f"anchors: order must be one of {self.ORDERS}, got '{order}'")
        self.sizes = [list(map(float, s)) for s in sizes]
        self.ratios = list(map(float, ratios))
        self.centre_offset, self.round_corners, self.floor_steps = float(centre_offset), bool(round_corners), \
            bool(floor_steps)
        self.order = order
        if steps is not None and len(steps) != len(self.sizes):
            raise ValueError(f"anchors: {len(self.sizes)} levels need {len(self.sizes)} steps, got {len(steps)}")
        self.steps = None if steps is None else [float(v) for v in steps]
        super().__init__(clip)

    def num_anchors_per_level(self) -> list[int]:
        return [len(s) * len(self.ratios) for s in self.sizes]

    def cell_shapes(self, level: int, image_size: tuple[int, int]) -> torch.Tensor:
        pairs = ([(size, r) for size in self.sizes[level] for r in self.ratios] if self.order == "size_major" else
                 [(size, r) for r in self.ratios for size in self.sizes[level]])
        shapes = [(size / math.sqrt(r), size * math.sqrt(r)) for size, r in pairs]
        return torch.tensor(shapes, dtype=torch.float64)
