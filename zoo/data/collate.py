"""Samples -> Batch: the one place images are normalised and padded, and boxes mapped back."""
from __future__ import annotations

import numpy as np
import torch

from zoo.structures import Batch, ImageMeta


class Collate:
    """``Collate(mean, std, size_divisor, pad_fill)(samples)`` -> Batch.

    ``mean``/``std`` are RGB in 0-255 pixel units. Images become (B, 3, H, W) float32, (x - mean) / std,
    padded at the bottom/right to the largest H and W of the batch rounded up to ``size_divisor``: with the
    mean colour (``pad_fill: mean``, zeros once normalised) or black (``black``: what a model trained on
    black-bordered crops saw, CornerNet's). Built in numpy: small torch ops in a loader process stall on
    torch's thread pool when cores are busy.
    """

    def __init__(self, mean, std, size_divisor: int = 1, pad_fill: str = "mean"):
        for key, value in (("mean", mean), ("std", std)):
            if np.size(value) != 3:
                raise ValueError(f"data.{key} must hold 3 values (R, G, B in 0-255 pixel units), got "
                                 f"{np.ravel(value).tolist()}")
        if pad_fill not in ("mean", "black"):
            raise ValueError(f"model.pad_fill must be 'mean' or 'black', got {pad_fill!r}")
        self.mean = np.asarray(mean, np.float32).reshape(3, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(3, 1, 1)
        self.size_divisor = size_divisor
        # The padding's RGB pixel (what an exported model's caller pads with) and its normalised value.
        self.pad_pixel = [float(v) for v in np.ravel(mean)] if pad_fill == "mean" else [0.0, 0.0, 0.0]
        self.fill = (np.asarray(self.pad_pixel, np.float32).reshape(3, 1, 1) - self.mean) / self.std

    def __call__(self, samples: list[dict | None]) -> Batch:
        kept = [s for s in samples if s is not None]  # None: an unreadable image left out (skip_bad)
        skipped, samples = len(samples) - len(kept), kept
        if not samples:
            return Batch(torch.zeros(0, 3, 1, 1), [], [], skipped)
        heights, widths = zip(*(s["image"].shape[:2] for s in samples))
        h, w = (-(-max(sizes) // self.size_divisor) * self.size_divisor for sizes in (heights, widths))
        images = np.empty((len(samples), 3, h, w), np.float32)
        images[...] = self.fill
        for image, s in zip(images, samples):
            view = image[:, :s["image"].shape[0], :s["image"].shape[1]]
            view[...] = s["image"].transpose(2, 0, 1)  # one strided copy that also casts to float32
            view -= self.mean
            view /= self.std
        targets = [dict(boxes=torch.from_numpy(s["boxes"]).float(), labels=torch.from_numpy(s["labels"]).long(),
                        ignore=torch.from_numpy(s["ignore"]).bool()) for s in samples]
        metas = [ImageMeta(image_id=int(s["image_id"]), orig_size=tuple(s["orig_size"]),
                           input_size=s["image"].shape[:2], scale=tuple(s["scale"]), file=s["file"])
                 for s in samples]
        proposals = ([torch.from_numpy(np.asarray(s["proposals"], np.float32)).reshape(-1, 4) for s in samples]
                     if "proposals" in samples[0] else None)
        return Batch(torch.from_numpy(images), targets, metas, skipped, proposals)


def to_original(boxes, meta: ImageMeta):
    """Boxes (N, 4) in input pixels -> original image pixels: undo the resize, clip to the stored image.
    Takes and returns a tensor or a numpy array."""
    tensor = torch.as_tensor(boxes, dtype=None if isinstance(boxes, torch.Tensor) else torch.float32)
    (sx, sy), (h, w) = meta.scale, meta.orig_size
    out = torch.minimum((tensor / tensor.new_tensor([sx, sy, sx, sy])).clamp(min=0), tensor.new_tensor([w, h, w, h]))
    return out if isinstance(boxes, torch.Tensor) else out.numpy()
