"""CornerNet's losses: the focal variant on corner heatmaps, pull/push on the corner embeddings,
smooth L1 on the sub-cell offsets; summed over the backbone's stacks (intermediate supervision)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from zoo.registry import LOSSES
from zoo.task.corner_targets import CornerTargets


def corner_focal_loss(logits: torch.Tensor, heat: torch.Tensor, ignore: torch.Tensor | None = None,
                      alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """Sum of -(1 - p)^a log p at the corners (heat == 1) and -(1 - y)^b p^a log(1 - p) elsewhere, where
    the Gaussian y lowers the penalty near a corner; divided by the number of corners. Log-sigmoids keep
    it finite without the authors' clamp of p."""
    logits = logits.float()
    positive = heat == 1
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
    p = log_p.exp()
    pos = ((1 - p) ** alpha * log_p)[positive].sum()
    neg_weight = (1 - heat) ** beta * (~positive)
    if ignore is not None:
        neg_weight = neg_weight * ~ignore
    neg = (neg_weight * p**alpha * log_not_p).sum()
    return -(pos + neg) / positive.sum().clamp(min=1)


def embedding_losses(tl: torch.Tensor, br: torch.Tensor, mask: torch.Tensor, margin: float = 1.0,
                     chunk: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``tl``, ``br`` (B, K) the embeddings at each object's two corners, ``mask`` (B, K) real objects.
    Per image, as in the paper: pull draws both corners to their mean e_k, averaged over the image's N
    objects; push is max(0, margin - |e_k - e_j|) averaged over its N(N - 1) ordered pairs.
    How the per-image terms combine over the batch:
    - ``chunk`` None: each term averaged over the images that have objects (pull) or at least two (push), the
      paper's per-image formula read as a mean over the batch;
    - ``chunk`` N: the authors' release, which sums the per-image terms over each GPU's share of the batch and
      averages those sums over the GPUs: here the batch is cut in consecutive chunks of N images (the last may be
      smaller), each chunk's terms summed, the sums averaged over the chunks. Against the focal term, whose
      normalisation does not grow with the images, pull and push then weigh about N times more."""
    tl, br = tl.float(), br.float()
    mean = (tl + br) / 2
    objects = mask.sum(dim=1)
    pull = (((tl - mean) ** 2 + (br - mean) ** 2) * mask).sum(dim=1) / objects.clamp(min=1)
    pairs = mask[:, :, None] & mask[:, None, :] & ~torch.eye(mask.shape[1], dtype=torch.bool, device=mask.device)
    gap = F.relu(margin - (mean[:, :, None] - mean[:, None, :]).abs())
    push = (gap * pairs).sum(dim=(1, 2)) / pairs.sum(dim=(1, 2)).clamp(min=1)
    if chunk is not None:
        return _chunk_sums_averaged(pull, chunk), _chunk_sums_averaged(push, chunk)
    return _mean_where(pull, objects > 0), _mean_where(push, objects > 1)


def _mean_where(values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    return (values * keep).sum() / keep.sum().clamp(min=1)


def _chunk_sums_averaged(values: torch.Tensor, chunk: int) -> torch.Tensor:
    return torch.stack([part.sum() for part in values.split(chunk)]).mean()


EMBEDDING_REDUCTIONS = ("mean", "chunk_sum")


@LOSSES.register("cornernet")
class CornerNetLoss:
    """Terms ``heat`` (focal, alpha 2, beta 4), ``pull`` and ``push`` (weights 0.1, margin 1) and
    ``off`` (smooth L1 on both corners' offsets over the objects, weight 1), each summed over stacks
    (the authors' release also divides the total by the number of stacks; under Adam only gradient
    clipping tells the difference). ``embedding_reduction``: how pull and push combine over the batch's images,
    ``mean`` over them or the authors' ``chunk_sum`` over chunks of ``embedding_chunk`` images (see
    ``embedding_losses``)."""

    def __init__(self, alpha: float = 2.0, beta: float = 4.0, pull_weight: float = 0.1, push_weight: float = 0.1,
                 offset_weight: float = 1.0, push_margin: float = 1.0, embedding_reduction: str = "mean",
                 embedding_chunk: int | None = None):
        if embedding_reduction not in EMBEDDING_REDUCTIONS:
            raise ValueError(f"loss cornernet: embedding_reduction must be one of {list(EMBEDDING_REDUCTIONS)}, got "
                             f"'{embedding_reduction}'")
        chunked = embedding_reduction == "chunk_sum"
        if chunked and (not isinstance(embedding_chunk, int) or isinstance(embedding_chunk, bool)
                        or embedding_chunk < 1):
            raise ValueError("loss cornernet: embedding_reduction=chunk_sum needs embedding_chunk, the images per chunk "
                             f"(a positive integer; the authors' 5), got {embedding_chunk!r}")
        if not chunked and embedding_chunk is not None:
            raise ValueError(f"loss cornernet: embedding_chunk={embedding_chunk} is only read with "
                             "embedding_reduction=chunk_sum")
        self.chunk = embedding_chunk if chunked else None
        self.alpha, self.beta, self.margin = alpha, beta, push_margin
        self.weights = {"heat": 1.0, "pull": pull_weight, "push": push_weight, "off": offset_weight}

    def __call__(self, outputs: Sequence[dict[str, torch.Tensor]], targets: CornerTargets) -> dict[str, torch.Tensor]:
        """``outputs``: per stack ``heat`` (B, 2, C, H, W) logits, ``embed`` (B, 2, H, W), ``offset``
        (B, 2, 2, H, W); corner type 0 is top-left, 1 bottom-right."""
        terms = {name: 0.0 for name in self.weights}
        mask = targets.mask
        count = mask.sum().clamp(min=1)
        for out in outputs:
            terms["heat"] = terms["heat"] + sum(
                corner_focal_loss(out["heat"][:, c], targets.heat[:, c],
                                  None if targets.ignore is None else targets.ignore[:, c], self.alpha, self.beta)
                for c in range(2))
            embed = out["embed"].flatten(2).gather(2, targets.index)  # (B, 2, K)
            pull, push = embedding_losses(embed[:, 0], embed[:, 1], mask, self.margin, self.chunk)
            terms["pull"] = terms["pull"] + pull
            terms["push"] = terms["push"] + push
            offset = out["offset"].flatten(3).gather(3, targets.index[:, :, None].expand(-1, -1, 2, -1))
            offset = offset.transpose(2, 3)  # (B, 2, K, 2)
            off = F.smooth_l1_loss(offset.float(), targets.offset, reduction="none").sum(-1)  # (B, 2, K)
            terms["off"] = terms["off"] + (off * mask[:, None]).sum() / count
        return {name: value * self.weights[name] for name, value in terms.items()}
