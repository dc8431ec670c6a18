"""One-to-one pairing of the rows and columns of an overlap matrix, the highest overlap first.

Hand-written: torchvision has no greedy assignment, and scipy's linear_sum_assignment solves a different
problem (the best total, not highest-first). The Caffe SSD's bipartite matching and Detectron's proposal
recall both pair greedily.
"""
from __future__ import annotations

import torch


def greedy_pairs(overlaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, cols) long tensors: repeatedly the largest positive entry of ``overlaps`` (R, C), whose row and
    column then leave the game; at most min(R, C) pairs, in the order taken. Entries <= 0 are never paired."""
    left = overlaps.detach().clone()
    rows, cols = [], []
    for _ in range(min(left.shape)):
        best = int(left.argmax())
        r, c = divmod(best, left.shape[1])
        if left[r, c] <= 0:
            break
        rows.append(r)
        cols.append(c)
        left[r, :] = -1.0
        left[:, c] = -1.0
    return (torch.tensor(rows, dtype=torch.long, device=overlaps.device),
            torch.tensor(cols, dtype=torch.long, device=overlaps.device))
