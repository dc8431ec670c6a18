"""Soft-NMS (Bodla et al., 2017), class-aware and vectorised over a padded batch of images.

Hand-written here because torchvision has no Soft-NMS.
"""
from __future__ import annotations

import torch
from torchvision.ops import box_area

METHODS = ("linear", "gaussian")


def _pairwise_iou(boxes: torch.Tensor) -> torch.Tensor:
    """IoU of every pair of boxes within each image: (B, N, 4) xyxy -> (B, N, N).

    Same formula as ``torchvision.ops.box_iou``, broadcast over the batch dimension (box_iou is 2-D only)."""
    area = box_area(boxes.reshape(-1, 4)).reshape(boxes.shape[:-1])
    lt = torch.maximum(boxes[:, :, None, :2], boxes[:, None, :, :2])
    rb = torch.minimum(boxes[:, :, None, 2:], boxes[:, None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area[:, :, None] + area[:, None, :] - inter
    # Degenerate (zero-area) pairs would give 0/0; treat them as not overlapping.
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), torch.zeros_like(inter))


def check_soft_nms_args(method: str, sigma: float, max_detections: int, merge_exponent: float | None = None) -> None:
    if merge_exponent is not None and not merge_exponent > 0:
        raise ValueError(f"merge_exponent must be > 0 (or null: no merging), got {merge_exponent}")
    if method not in METHODS:
        raise ValueError(f"unknown soft-NMS method {method!r}; expected one of {METHODS}")
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    if max_detections < 0:
        raise ValueError(f"max_detections must be >= 0, got {max_detections}")


def batched_soft_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor | None = None,
                     valid: torch.Tensor | None = None, method: str = "gaussian", sigma: float = 0.5,
                     iou_threshold: float = 0.5, score_threshold: float = 0.001,
                     max_detections: int = 100) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Soft-NMS on all images of a padded batch at once.

    boxes (B, N, 4) xyxy, scores (B, N), labels (B, N) int or None (one class), valid (B, N) bool or None
    (all real). Boxes of different labels never suppress each other; invalid (padding) boxes are never
    picked and never suppress. ``method`` "linear": score *= 1 - iou where iou > iou_threshold;
    "gaussian": score *= exp(-iou**2 / sigma) (iou_threshold unused, as in the paper).

    Returns padded tensors of width K = min(max_detections, N):
    ``keep`` (B, K) long, indices into each image's N boxes in pick order, -1 past the end;
    ``kept_scores`` (B, K), the decayed score of each pick, 0 past the end;
    ``num_kept`` (B,) long, the number of real picks per image.
    """
    keep, kept_scores, num_kept, _ = _soft_nms(boxes, scores, labels, valid, method, sigma, iou_threshold,
                                               score_threshold, max_detections, merge_exponent=None)
    return keep, kept_scores, num_kept


def _soft_nms(boxes, scores, labels, valid, method, sigma, iou_threshold, score_threshold, max_detections,
              merge_exponent: float | None):
    """``batched_soft_nms``; with ``merge_exponent`` also each pick's merged box (B, K, 4): see ``soft_nms``."""
    check_soft_nms_args(method, sigma, max_detections, merge_exponent)
    if boxes.dim() != 3 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be (B, N, 4), got {tuple(boxes.shape)}")
    batch, n = boxes.shape[:2]
    if scores.shape != (batch, n):
        raise ValueError(f"scores must be (B, N) = {(batch, n)}, got {tuple(scores.shape)}")
    if labels is not None and labels.shape != (batch, n):
        raise ValueError(f"labels must be (B, N) = {(batch, n)}, got {tuple(labels.shape)}")
    if valid is not None and (valid.shape != (batch, n) or valid.dtype != torch.bool):
        raise ValueError(f"valid must be a bool (B, N) = {(batch, n)} mask, got {valid.dtype} {tuple(valid.shape)}")

    device = boxes.device
    steps = min(max_detections, n)
    keep = torch.full((batch, steps), -1, dtype=torch.long, device=device)
    kept_scores = torch.zeros((batch, steps), dtype=scores.dtype, device=device)
    num_kept = torch.zeros(batch, dtype=torch.long, device=device)
    merged = None if merge_exponent is None else torch.zeros((batch, steps, 4), device=device)
    if steps == 0 or batch == 0:
        return keep, kept_scores, num_kept, merged

    # The whole IoU matrix once; cross-class pairs set to 0 so they never decay each other
    # (gaussian: exp(0) = 1; linear: 0 <= threshold -> unchanged).
    iou = _pairwise_iou(boxes.float())
    if labels is not None:
        iou = iou * (labels[:, :, None] == labels[:, None, :])
    if method == "linear":
        decay = torch.where(iou > iou_threshold, 1 - iou, torch.ones_like(iou))
    else:
        decay = torch.exp(-iou.square() / sigma)
    decay = decay.to(scores.dtype)

    current = scores.clone()
    unpicked = torch.ones_like(scores, dtype=torch.bool) if valid is None else valid.clone()
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    rows = torch.arange(batch, device=device)
    neg_inf = torch.tensor(float("-inf"), dtype=scores.dtype, device=device)
    # One iteration per pick (at most max_detections), each a handful of ops over the whole batch.
    for step in range(steps):
        best, idx = torch.where(unpicked, current, neg_inf).max(dim=1)
        # Scores only ever decrease, so an image whose best falls below the threshold is finished.
        done |= ~(best >= score_threshold)
        if not torch.compiler.is_exporting() and bool(done.all()):  # the rest would change nothing: an export runs it
            break
        take = ~done
        keep[:, step] = torch.where(take, idx, -1)
        kept_scores[:, step] = torch.where(take, best, 0)
        num_kept += take
        unpicked[rows, idx] &= done
        if merged is not None:  # the boxes still in play, before this pick decays them
            merged[:, step] = _merged_box(boxes, scores, decay[rows, idx], idx, unpicked & (current >= score_threshold),
                                          merge_exponent)
        current = torch.where(unpicked & take[:, None], current * decay[rows, idx], current)
    return keep, kept_scores, num_kept, merged


def _merged_box(boxes, scores, decay, idx, in_play, exponent):
    """The pick's box averaged with the boxes it decays, each weighted by its score times
    (1 - decay) ** exponent: near-duplicates count, boxes it barely touches do not."""
    rows = torch.arange(len(idx), device=boxes.device)
    weight = scores.float() * (1 - decay.float()).pow(exponent) * in_play
    weight[rows, idx] = scores[rows, idx].float()
    return (boxes.float() * weight[..., None]).sum(1) / weight.sum(1, keepdim=True).clamp(min=1e-12)


def soft_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor | None = None,
             method: str = "gaussian", sigma: float = 0.5, iou_threshold: float = 0.5,
             score_threshold: float = 0.001, max_detections: int = 100,
             merge_exponent: float | None = None) -> tuple[torch.Tensor, ...]:
    """Soft-NMS on one image: boxes (N, 4) xyxy, scores (N,), labels (N,) int or None (one class).

    Returns (keep, kept_scores): indices into the input in pick order and their decayed scores.
    See ``batched_soft_nms`` for the semantics (this is that function with B = 1).
    With ``merge_exponent`` (CornerNet's multi-scale test, 10) a third tensor, each pick's box merged with the
    boxes still in play that it decays (not yet picked, score not yet under ``score_threshold``): their
    average weighted by score x (1 - decay) ** merge_exponent, the pick's own weight its score. CornerNet
    weights the left and top sides by the top-left corner's score and the others by the bottom-right's; a
    detection here carries one score, the mean of the two."""
    if boxes.dim() != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be (N, 4), got {tuple(boxes.shape)}")
    if scores.shape != boxes.shape[:1]:
        raise ValueError(f"scores must be (N,) = ({boxes.shape[0]},), got {tuple(scores.shape)}")
    if labels is not None and labels.shape != boxes.shape[:1]:
        raise ValueError(f"labels must be (N,) = ({boxes.shape[0]},), got {tuple(labels.shape)}")
    keep, kept_scores, num_kept, merged = _soft_nms(
        boxes[None], scores[None], None if labels is None else labels[None], None, method, sigma, iou_threshold,
        score_threshold, max_detections, merge_exponent)
    n = int(num_kept[0])
    if merged is None:
        return keep[0, :n], kept_scores[0, :n]
    return keep[0, :n], kept_scores[0, :n], merged[0, :n].to(boxes.dtype)
