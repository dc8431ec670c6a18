"""Unlabelled images (files or arrays) as a data set, so that prediction on any picture goes through the
same transform, collate and mapping back as evaluation does."""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from zoo.data.base import DetectionDataset, read_image
from zoo.data.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def image_files(inputs: Sequence[str]) -> list[str]:
    """Files as given, folders replaced by their images (sorted by name, not recursive)."""
    files = []
    for path in inputs:
        if os.path.isdir(path):
            found = sorted(os.path.join(path, name) for name in os.listdir(path)
                           if name.lower().endswith(IMAGE_SUFFIXES))
            if not found:
                raise DataError(f"{path}: a folder with no images ({', '.join(IMAGE_SUFFIXES)})")
            files += found
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise DataError(f"{path}: no such file or folder (relative to {os.getcwd()})")
    return files


def _path(index: int, image) -> str:
    if not isinstance(image, str | os.PathLike):
        raise ValueError(f"image {index}: expected a path or an (H, W, 3) uint8 RGB array, got {type(image).__name__}")
    return os.fspath(image)


class ImageList(DetectionDataset):
    """``images``: paths (str or os.PathLike), or (H, W, 3) uint8 RGB arrays; no ground truth (every
    annotation is empty)."""

    def __init__(self, images: Sequence[str | os.PathLike | np.ndarray], class_names: Sequence[str], transform=None,
                 skip_bad: bool = False):
        super().__init__("images", transform, skip_bad)
        self.stand_in = False  # an unreadable image is left out, never replaced by another
        self.images = [image if isinstance(image, np.ndarray) else _path(i, image) for i, image in enumerate(images)]
        self.class_names = list(class_names)
        for i, image in enumerate(self.images):
            if isinstance(image, np.ndarray) and (image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8):
                raise ValueError(f"image {i}: expected an (H, W, 3) uint8 RGB array, got {image.dtype} "
                                 f"{tuple(image.shape)}")

    def __len__(self) -> int:
        return len(self.images)

    def file(self, index: int) -> str:
        image = self.images[index]
        return image if isinstance(image, str) else f"array[{index}]"

    def load_image(self, index: int) -> np.ndarray:
        image = self.images[index]
        return read_image(image) if isinstance(image, str) else image

    def load(self, index: int) -> tuple[np.ndarray, dict]:
        image = self.load_image(index)  # read once: the annotation's size is the image's
        return image, self._empty(index, *image.shape[:2])

    def get_annotation(self, index: int) -> dict:
        return self._empty(index, *self.load_image(index).shape[:2])

    @staticmethod
    def _empty(index: int, height: int, width: int) -> dict:
        return {"image_id": index, "boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64),
                "ignore": np.zeros(0, bool), "height": height, "width": width}
