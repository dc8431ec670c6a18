"""Per-image ground truth as every data set stores it, and the one place boxes get sanitised."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zoo.data.errors import Tally


def as_targets(boxes, labels, ignore) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fresh arrays with the contract's dtypes and shapes, (0, 4)/(0,) for a negative image (copies: a
    caller may edit a sample in place)."""
    return (
        np.array(boxes, np.float32).reshape(-1, 4),
        np.array(labels, np.int64).reshape(-1),
        np.array(ignore, np.bool_).reshape(-1),
    )


def sanitize_boxes(boxes: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Clip xyxy boxes to the image; return them with the mask of boxes that keep a positive area.

    Clipping first means a box lying wholly outside the image is dropped like a zero-area one.
    """
    boxes = np.array(boxes, np.float32).reshape(-1, 4)
    np.clip(boxes[:, 0::2], 0, width, out=boxes[:, 0::2])
    np.clip(boxes[:, 1::2], 0, height, out=boxes[:, 1::2])
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes, keep


@dataclass
class ImageRecord:
    """One stored image and its sanitised ground truth in original pixels."""

    file: str  # path of the image on disk
    source: str  # short name of the annotation it came from, for messages
    height: int
    width: int
    boxes: np.ndarray  # (N, 4) float32 xyxy
    labels: np.ndarray  # (N,) int64
    ignore: np.ndarray  # (N,) bool
    ref: object = None  # the image's id in its source format (COCO image id), when it has one
    area: np.ndarray | None = None  # (N,) float32 the source's own object areas (COCO's), when it has them

    def annotation(self, image_id: int) -> dict:
        ann = dict(image_id=image_id, boxes=self.boxes, labels=self.labels, ignore=self.ignore,
                   height=self.height, width=self.width)
        return ann if self.area is None else {**ann, "area": self.area}


def make_record(file: str, source: str, height: int, width: int, boxes, labels, ignore, dropped: Tally,
                ref: object = None, area=None) -> ImageRecord:
    """Sanitise one image's boxes (clip to the image, drop empty ones) and count the drops in ``dropped``."""
    boxes, labels, ignore = as_targets(boxes, labels, ignore)
    boxes, keep = sanitize_boxes(boxes, height, width)
    dropped.add(source, int((~keep).sum()))
    boxes, labels, ignore = boxes[keep], labels[keep], ignore[keep]
    if area is not None:  # NaN (an object without one): its clipped box's area
        area = np.array(area, np.float32).reshape(-1)[keep]
        area = np.where(np.isnan(area), (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), area)
    return ImageRecord(file, source, height, width, boxes, labels, ignore, ref, area)


def dropped_boxes_tally() -> Tally:
    """The one counter of degenerate boxes a data set reports after parsing."""
    return Tally("dropped {n} boxes with zero or negative area (after clipping to the image)")
