"""The batch that the data side hands to a detector and the metadata that travels beside it.

Contract (see DESIGN.md): ``images`` (B, 3, H, W) normalised and padded; ``targets`` a list of B
dicts with ``boxes`` (N, 4) float xyxy in input pixels, ``labels`` (N,) int64 in 0..C-1 and
``ignore`` (N,) bool. Metadata never enters the model, except each image's size before padding
(``Batch.image_sizes``), which detectors take as ``image_sizes`` to clip boxes to the image, not the pad.
"""
from __future__ import annotations

from collections.abc import Sequence
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
    # Given RoIs per image, (N, 4) in input pixels, where the data carries a proposals file (Fast R-CNN's input)
    proposals: list[torch.Tensor] | None = None

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        return Batch(
            self.images.to(device, non_blocking=non_blocking),
            [{k: v.to(device, non_blocking=non_blocking) for k, v in t.items()} for t in self.targets],
            self.metas,
            self.skipped,
            None if self.proposals is None else [p.to(device, non_blocking=non_blocking) for p in self.proposals],
        )

    def model_inputs(self, device: torch.device | str | None = None) -> dict[str, list[torch.Tensor]]:
        """The keyword inputs beside the images that the detector takes: ``proposals`` where the batch has them."""
        if self.proposals is None:
            return {}
        return {"proposals": [p.to(device) if device is not None else p for p in self.proposals]}

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_sizes(self) -> list[tuple[int, int]]:
        """Each image's (height, width) inside the padded batch."""
        return [tuple(meta.input_size) for meta in self.metas]


def per_image_sizes(images: torch.Tensor, image_sizes: Sequence[Sequence[int]] | None = None) -> list[tuple[int, int]]:
    """A detector's ``image_sizes`` argument made concrete: each image's (height, width) before padding,
    or, when the caller has none (a bare tensor, a test-time augmentation view), the whole canvas."""
    if image_sizes is None:
        return [tuple(images.shape[-2:])] * images.shape[0]
    if len(image_sizes) != images.shape[0]:
        raise ValueError(f"image_sizes: {len(image_sizes)} sizes for a batch of {images.shape[0]} images")
    return [(int(h), int(w)) for h, w in image_sizes]
