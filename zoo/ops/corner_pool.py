"""Corner pooling (CornerNet): at each location, the maximum of a feature over a half-line.

Pure PyTorch through ``torch.cummax`` (a running maximum with gradients, no compiled extension): the
top pool takes the maximum over the location and everything below it, the left pool over everything
to its right; the bottom and right pools are their mirrors. A top-left corner sees the object's top
edge by looking down and its left edge by looking right.
"""
from __future__ import annotations

import torch

_HEIGHT, _WIDTH = -2, -1


def _reverse_cummax(x: torch.Tensor, dim: int) -> torch.Tensor:
    return x.flip(dim).cummax(dim).values.flip(dim)


def top_pool(x: torch.Tensor) -> torch.Tensor:
    """(..., H, W): out[i, j] = max(x[i:, j])."""
    return _reverse_cummax(x, _HEIGHT)


def left_pool(x: torch.Tensor) -> torch.Tensor:
    """(..., H, W): out[i, j] = max(x[i, j:])."""
    return _reverse_cummax(x, _WIDTH)


def bottom_pool(x: torch.Tensor) -> torch.Tensor:
    """(..., H, W): out[i, j] = max(x[:i + 1, j])."""
    return x.cummax(_HEIGHT).values


def right_pool(x: torch.Tensor) -> torch.Tensor:
    """(..., H, W): out[i, j] = max(x[i, :j + 1])."""
    return x.cummax(_WIDTH).values


# The pair of pools each corner type sums (first applied to the first branch, second to the second).
CORNER_POOLS = {"top_left": (top_pool, left_pool), "bottom_right": (bottom_pool, right_pool)}
