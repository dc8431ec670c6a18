"""CornerNet decoding: corner heatmaps, embeddings and offsets -> scored box candidates, batched."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def decode_corners(heat: torch.Tensor, embed: torch.Tensor, offset: torch.Tensor, stride: int, k: int = 100,
                   max_distance: float = 0.5, num_pairs: int = 1000, kernel: int = 3):
    """``heat`` (B, 2, C, H, W) logits, ``embed`` (B, 2, H, W), ``offset`` (B, 2, 2, H, W); type 0 top-left.

    A ``kernel`` x ``kernel`` max-pool keeps each heatmap's local peaks (NMS on the map), the ``k`` best
    corners of each type (over classes and cells) get their offsets, then every top-left/bottom-right
    pair is scored by the mean of its two corner scores and rejected when the classes differ, the
    embeddings are further apart than ``max_distance`` (L1) or the bottom-right is not below and right
    of the top-left. Returns the ``num_pairs`` best: boxes (B, M, 4) in input pixels, scores (B, M),
    labels (B, M) and valid (B, M)."""
    batch, _, classes, height, width = heat.shape
    # Peaks on the logits (the sigmoid is monotonic, so only the k winners need it), in channels-last
    # layout, where the CPU max-pool is several times faster; the top k are then searched in
    # (cell, class) order.
    logits = heat.float().flatten(1, 2).contiguous(memory_format=torch.channels_last)
    peaks = F.max_pool2d(logits, kernel, 1, kernel // 2)
    logits = torch.where(peaks == logits, logits, torch.full_like(logits, float("-inf")))
    per_cell = logits.permute(0, 2, 3, 1).reshape(batch, height * width, 2, classes)  # a view
    k = min(k, height * width * classes)
    top, idx = per_cell.transpose(1, 2).reshape(batch, 2, -1).topk(k)  # (B, 2, k) over (cell, class)
    scores = top.sigmoid()
    labels, cell = idx % classes, idx // classes
    off = offset.float().flatten(3).gather(3, cell[:, :, None].expand(-1, -1, 2, -1))  # (B, 2, 2, k)
    xs = ((cell % width).float() + off[:, :, 0]) * stride
    ys = ((cell // width).float() + off[:, :, 1]) * stride
    emb = embed.float().flatten(2).gather(2, cell)  # (B, 2, k)

    # Pairs (B, k top-left, k bottom-right).
    score = (scores[:, 0, :, None] + scores[:, 1, None, :]) / 2
    valid = (torch.isfinite(top[:, 0, :, None]) & torch.isfinite(top[:, 1, None, :])  # fewer than k peaks
             & (labels[:, 0, :, None] == labels[:, 1, None, :])
             & ((emb[:, 0, :, None] - emb[:, 1, None, :]).abs() <= max_distance)
             & (xs[:, 1, None, :] > xs[:, 0, :, None]) & (ys[:, 1, None, :] > ys[:, 0, :, None]))
    score = torch.where(valid, score, torch.full_like(score, -1.0))
    best, pair = score.flatten(1).topk(min(num_pairs, k * k))
    # Rejected pairs sort last; cut the columns no image has a valid pair in (soft-NMS is quadratic), except
    # while exporting, where the cut's size would depend on the data: they stay, marked invalid.
    if not torch.compiler.is_exporting():
        kept = max(int((best >= 0).sum(1).max()), 1)
        best, pair = best[:, :kept], pair[:, :kept]
    tl, br = pair // k, pair % k
    boxes = torch.stack([xs[:, 0].gather(1, tl), ys[:, 0].gather(1, tl),
                         xs[:, 1].gather(1, br), ys[:, 1].gather(1, br)], dim=-1)
    return boxes, best, labels[:, 0].gather(1, tl), best >= 0
