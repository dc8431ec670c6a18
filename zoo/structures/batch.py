"""The batch that the data side hands to a detector and the metadata that travels beside it.

Contract (see DESIGN.md): ``images`` (B, 3, H, W) normalised and padded; ``targets`` a list of B
dicts with ``boxes`` (N, 4) float xyxy in input pixels, ``labels`` (N,) int64 in 0..C-1 and
``ignore`` (N,) bool. Metadata never enters the model.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class ImageMeta:
    image_id: int
    orig_size: tuple[int, int]  # (height, width) of the image as stored
    input_size: tuple[int, int]  # (height, width) after resizing, before batch padding
    scale: tuple[float, float] = (1.0, 1.0)  # (sx, sy): input pixel = original pixel * scale
    file: str = ""


@dataclass
class Batch:
    images: torch.Tensor
    targets: list[dict[str, torch.Tensor]]
    metas: list[ImageMeta] = field(default_factory=list)
    skipped: int = 0  # unreadable images left out of an evaluation batch (data.skip_bad=true)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        return Batch(
            self.images.to(device, non_blocking=non_blocking),
            [{k: v.to(device, non_blocking=non_blocking) for k, v in t.items()} for t in self.targets],
            self.metas,
            self.skipped,
        )

    def __len__(self) -> int:
        return self.images.shape[0]
