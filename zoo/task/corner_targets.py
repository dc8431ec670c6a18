"""CornerNet's training targets: per-class corner heatmaps with Gaussian penalty reduction, the
corners' cells and sub-cell offsets. Built for the whole batch at once (no loop over objects)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


def corner_radius(widths: torch.Tensor, heights: torch.Tensor, min_overlap: float = 0.3,
                  formula: str = "exact") -> torch.Tensor:
    """The largest r such that moving both corners of a w x h box by up to r (in x and in y) keeps
    IoU >= ``min_overlap``: the smallest of the three worst cases, both corners moved the same way
    (a shifted box), both inward (a shrunk box) and both outward (a grown box), solved exactly.

    ``formula='authors'`` reproduces the CornerNet release, whose three quadratics take the larger
    root with a different scaling; its radii are about 2-3x the exact ones at the same overlap. The
    release behind the paper's figures used it with ``min_overlap`` 0.7, which gives radii near the
    exact formula's at the paper's stated 0.3 (a 20 x 20 box: 5.5 against 4.5 cells)."""
    if not 0.0 < min_overlap < 1.0:
        raise ValueError(f"corner targets: min_overlap must be in (0, 1), got {min_overlap}")
    w, h, o = widths.float(), heights.float(), min_overlap
    s, area = w + h, w * h
    if formula == "exact":
        shifted = (s - torch.sqrt(s * s - 4 * area * (1 - o) / (1 + o))) / 2
        shrunk = (s - torch.sqrt(s * s - 4 * area * (1 - o))) / 4
        grown = (torch.sqrt(s * s + 4 * area * (1 - o) / o) - s) / 4
    elif formula == "authors":
        shifted = (s + torch.sqrt(s * s - 4 * area * (1 - o) / (1 + o))) / 2
        shrunk = (2 * s + torch.sqrt(4 * s * s - 16 * area * (1 - o))) / 2
        grown = (-2 * o * s + torch.sqrt(4 * o * o * s * s - 16 * o * (o - 1) * area)) / 2
    else:
        raise ValueError(f"corner targets: radius_formula must be 'exact' or 'authors', got '{formula}'")
    return torch.minimum(torch.minimum(shifted, shrunk), grown).clamp(min=0)


@dataclass
class CornerTargets:
    """``heat`` (B, 2, C, H, W) for top-left (0) and bottom-right (1); ``ignore`` (B, 2, C, H, W) bool
    where negatives are not penalised (near the corners of ``ignore`` objects; None when the batch has
    none); ``index`` (B, 2, K)
    flat cell index y * W + x; ``offset`` (B, 2, K, 2) sub-cell x, y; ``mask`` (B, K) real objects."""

    heat: torch.Tensor
    ignore: torch.Tensor | None
    index: torch.Tensor
    offset: torch.Tensor
    mask: torch.Tensor


def build_corner_targets(targets: Sequence[dict[str, torch.Tensor]], num_classes: int, size: tuple[int, int],
                         stride: int, min_overlap: float = 0.3, fixed_radius: float | None = None,
                         penalty_reduction: bool = True, radius_formula: str = "exact") -> CornerTargets:
    """``targets`` in input pixels; ``size`` (H, W) of the output map at ``stride``.

    Each corner gets an unnormalised Gaussian (peak 1) of sigma = (2r + 1) / 6 cut to the square of
    radius r: r from ``corner_radius`` (object-dependent, ``radius_formula``) or ``fixed_radius`` (the
    paper's Table 2 uses 2.5). ``penalty_reduction=false`` leaves only the corner cell at 1 and every other cell a full
    negative (Table 2's first row). Objects marked ``ignore`` get no positives; negatives within their
    Gaussians are not penalised."""
    height, width = size
    device = targets[0]["boxes"].device if targets else torch.device("cpu")
    batch = len(targets)
    counts = [int((~_ignored(t)).sum()) for t in targets]
    k = max(counts + [1])
    heat = torch.zeros(batch * 2 * num_classes, height, width, device=device)
    index = torch.zeros(batch, 2, k, dtype=torch.long, device=device)
    offset = torch.zeros(batch, 2, k, 2, device=device)
    mask = torch.zeros(batch, k, dtype=torch.bool, device=device)
    shape = (batch, 2, num_classes, height, width)
    if sum(len(t["boxes"]) for t in targets) == 0:
        return CornerTargets(heat.view(shape), None, index, offset, mask)

    boxes = torch.cat([t["boxes"].float() for t in targets]) / stride
    labels = torch.cat([t["labels"] for t in targets])
    if labels.numel() and not 0 <= int(labels.min()) <= int(labels.max()) < num_classes:
        raise ValueError(f"corner targets: labels must lie in 0..{num_classes - 1}, got {labels.unique().tolist()}")
    ignored = torch.cat([_ignored(t) for t in targets])
    image = torch.cat([torch.full((len(t["boxes"]),), i, dtype=torch.long, device=device) for i, t in enumerate(targets)])
    # Corners in map units (up to W, H: a box may touch the far border); cells clamped onto the map,
    # so a corner past the last cell keeps its sub-cell offset (up to 1) instead of losing it.
    corners = torch.stack([boxes[:, :2], boxes[:, 2:]], dim=1).clamp(min=0).minimum(boxes.new_tensor([width, height]))
    cells = corners.floor().minimum(boxes.new_tensor([width - 1, height - 1]))  # (N, 2, 2)
    if fixed_radius is not None:
        radius = torch.full_like(boxes[:, 0], float(fixed_radius))
    else:
        sides = boxes[:, 2:] - boxes[:, :2]
        if radius_formula == "authors":
            sides = sides.ceil()  # the release rounds the box's map-unit width and height up first
        radius = corner_radius(sides[:, 0], sides[:, 1], min_overlap, radius_formula).floor()
    if not penalty_reduction:
        radius = torch.zeros_like(radius)
    gauss = _gaussians(cells.view(-1, 2), radius.repeat_interleave(2), height, width)  # (2N, H, W)
    # Heatmap channel of each corner: image, corner type, class (the max keeps overlapping Gaussians apart).
    channel = (image[:, None] * 2 + torch.arange(2, device=device)) * num_classes + labels[:, None]
    channel, ignored2 = channel.flatten(), ignored.repeat_interleave(2)
    _max_into(heat, channel[~ignored2], gauss[~ignored2])
    ignore = None
    if ignored.any():
        near = torch.zeros_like(heat)
        _max_into(near, channel[ignored2], gauss[ignored2])
        ignore = (near > 0).view(shape) & (heat.view(shape) < 1)

    # Slots 0..n-1 of each image hold its kept objects in order.
    kept = ~ignored
    slot = _rank_within(image[kept])
    img = image[kept]
    cell = cells[kept].long()
    index[img, :, slot] = cell[..., 1] * width + cell[..., 0]
    offset[img, :, slot] = corners[kept] - cells[kept]
    mask[img, slot] = True
    return CornerTargets(heat.view(shape), ignore, index, offset, mask)


def _ignored(target: dict[str, torch.Tensor]) -> torch.Tensor:
    ignore = target.get("ignore")
    return torch.zeros(len(target["boxes"]), dtype=torch.bool, device=target["boxes"].device) if ignore is None \
        else ignore.bool()


def _max_into(maps: torch.Tensor, channel: torch.Tensor, values: torch.Tensor) -> None:
    """maps[channel[i]] = max(maps[channel[i]], values[i]) for every i, in one scatter."""
    flat = values.flatten(1)
    maps.view(maps.shape[0], -1).scatter_reduce_(0, channel[:, None].expand_as(flat), flat, "amax")


def _gaussians(centres: torch.Tensor, radius: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(M, H, W): exp(-d^2 / 2 sigma^2), zero outside the square of radius r. sigma = (2r + 1) / 6, the
    diameter over 6 as the authors' release computes it (the paper's text says r / 3)."""
    ys = torch.arange(height, device=centres.device, dtype=torch.float32)
    xs = torch.arange(width, device=centres.device, dtype=torch.float32)
    dx = xs[None, None, :] - centres[:, 0, None, None]
    dy = ys[None, :, None] - centres[:, 1, None, None]
    sigma = ((2 * radius + 1) / 6)[:, None, None]
    g = torch.exp(-(dx * dx + dy * dy) / (2 * sigma * sigma))
    inside = (dx.abs() <= radius[:, None, None]) & (dy.abs() <= radius[:, None, None])
    return g * inside


def _rank_within(groups: torch.Tensor) -> torch.Tensor:
    """For a sorted-by-occurrence group id per item, the item's position within its group."""
    order = torch.arange(len(groups), device=groups.device)
    first = torch.full((int(groups.max()) + 1 if len(groups) else 0,), len(groups), device=groups.device)
    first = first.scatter_reduce(0, groups, order, "amin")
    return order - first[groups]
