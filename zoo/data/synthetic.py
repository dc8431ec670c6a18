"""The project's default data: shapes on cluttered backgrounds, drawn on the fly from (seed, split, index).

Each image has a smooth random background with grain, distractor lines, scribbles and specks (drawn
first, so objects cover them), then 1..max_objects shapes of log-uniform size (small objects are common,
half-image ones occur), random colour contrasting with the background, random rotation and a mild
stretch. Later shapes may cover earlier ones: an object with less than ``min_visible`` of its pixels
left is removed from the labels (its remains stay as clutter), and every kept box is the tight box of
the object's *visible* pixels, so boxes stay exact under occlusion.
"""
from __future__ import annotations

import zlib

import cv2
import numpy as np

from zoo.data.base import DetectionDataset
from zoo.data.shapes import SHAPE_NAMES, draw, extent, outline
from zoo.registry import DATASETS

_GRAIN = 12  # amplitude of the pixel noise added last, in grey levels
_NOISE_TILES = 4


def noise_bank(seed: int, size: int) -> np.ndarray:
    """A few large noise tiles made once; each image takes a random window (drawing fresh noise per
    image would cost more than everything else put together)."""
    rng = np.random.default_rng([seed, 0x6E6F697365])
    return rng.integers(0, 2 * _GRAIN + 1, (_NOISE_TILES, 2 * size, 2 * size, 3), dtype=np.uint8)


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, 3))


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    base = rng.integers(0, 256, 3)
    grid = np.clip(base + rng.integers(-60, 61, (3, 3, 3)), 0, 255).astype(np.uint8)
    return cv2.resize(grid, (size, size), interpolation=cv2.INTER_LINEAR)


def _clutter(rng: np.random.Generator, image: np.ndarray) -> None:
    """Thin lines, open scribbles and specks: edges and colour like objects, but no closed class outline."""
    size = image.shape[0]
    for _ in range(int(rng.integers(0, 7))):
        p, q = rng.integers(0, size, (2, 2))
        cv2.line(image, tuple(map(int, p)), tuple(map(int, q)), _colour(rng), int(rng.integers(1, 3)), cv2.LINE_AA)
    for _ in range(int(rng.integers(0, 4))):
        walk = rng.integers(0, size, 2) + np.cumsum(rng.normal(0, 0.08 * size, (int(rng.integers(3, 7)), 2)), axis=0)
        cv2.polylines(image, [walk.astype(np.int32)], False, _colour(rng), int(rng.integers(1, 3)), cv2.LINE_AA)
    for _ in range(int(rng.integers(0, 12))):  # specks stay below the smallest object size
        cv2.circle(image, tuple(map(int, rng.integers(0, size, 2))), int(rng.integers(1, 3)), _colour(rng), -1)


def _contrasting(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    colour = rng.integers(0, 256, 3)
    if np.abs(colour - background.astype(int)).sum() < 150:  # too close to see: take the opposite hue
        colour = (background.astype(int) + 128) % 256
    return colour.astype(np.uint8)


def _draw_objects(rng: np.random.Generator, image: np.ndarray, field: np.ndarray, count: int, min_size: float,
                  max_size: float) -> tuple[np.ndarray, list]:
    """Paint ``count`` shapes; return the owner map (which object 1..count shows at each pixel) and, per
    object, (label, region slice, top-left of the region, pixel count when drawn)."""
    size = image.shape[0]
    owner = np.zeros((size, size), np.uint8)
    drawn = []
    for k in range(1, count + 1):
        label = int(rng.integers(len(SHAPE_NAMES)))
        side = np.exp(rng.uniform(np.log(min_size), np.log(max_size)))
        stretch = np.exp(rng.uniform(-0.25, 0.25))
        points, thickness = outline(SHAPE_NAMES[label], side / 2 * stretch, side / 2 / stretch,
                                    rng.uniform(0, 2 * np.pi))
        lo, hi = extent(points, thickness)
        points = points + rng.uniform(-lo, size - hi)  # a centre that keeps the whole shape inside
        lo, hi = extent(points, thickness)
        x0, y0 = np.maximum(np.floor(lo).astype(int), 0)
        region = np.s_[y0:max(y0, int(np.ceil(hi[1]))), x0:max(x0, int(np.ceil(hi[0])))]
        cx, cy = np.clip(points.mean(axis=0).astype(int), 0, size - 1)
        draw(image, points, thickness, tuple(int(v) for v in _contrasting(rng, field[cy, cx])))
        draw(owner, points, thickness, k)
        drawn.append((label, region, x0, y0, np.count_nonzero(owner[region] == k)))
    return owner, drawn


def _visible_objects(owner: np.ndarray, drawn: list, min_visible: float) -> tuple[list, list, list]:
    """Boxes (tight around the visible pixels), labels and visible fractions of the objects that enough of
    shows."""
    boxes, labels, fractions = [], [], []
    for k, (label, region, x0, y0, area) in enumerate(drawn, start=1):
        visible = owner[region] == k
        seen = np.count_nonzero(visible)
        if seen and seen >= min_visible * area:
            rows, cols = np.flatnonzero(visible.any(axis=1)), np.flatnonzero(visible.any(axis=0))
            boxes.append([x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1])  # pixel edges
            labels.append(label)
            fractions.append(seen / area)
    return boxes, labels, fractions


def _add_grain(rng: np.random.Generator, image: np.ndarray, noise: np.ndarray) -> np.ndarray:
    tile = noise[rng.integers(len(noise))]
    ox, oy = rng.integers(0, tile.shape[0] - image.shape[0] + 1, 2)
    window = tile[oy:oy + image.shape[0], ox:ox + image.shape[1]]
    return cv2.subtract(cv2.add(image, window), (_GRAIN, _GRAIN, _GRAIN, 0))  # saturating +-_GRAIN


def render(rng: np.random.Generator, size: int, noise: np.ndarray, min_size: float, max_size: float,
           max_objects: int, empty_fraction: float, min_visible: float) -> tuple[np.ndarray, list, list, list]:
    """One image (size, size, 3) uint8 RGB with its tight boxes, labels and the fraction of each object
    left visible."""
    field = _background(rng, size)
    image = field.copy()
    _clutter(rng, image)
    count = 0 if rng.random() < empty_fraction else int(rng.integers(1, max_objects + 1))
    owner, drawn = _draw_objects(rng, image, field, count, min_size, max_size)
    boxes, labels, visible = _visible_objects(owner, drawn, min_visible)
    return _add_grain(rng, image, noise), boxes, labels, visible


@DATASETS.register("synthetic")
class SyntheticShapes(DetectionDataset):
    """``num_images`` images of ``image_size`` px; 'train' and 'val' (any split name) draw disjoint sets.

    ``ignore_below_visible`` and ``ignore_below_size`` mark the labelled objects showing less than that
    fraction of themselves, or with a box whose longer side is below that many pixels, as ``ignore``
    (VOC's 'difficult': neither found nor missed), to measure what the ambiguous objects cost a
    detector (benchmarks/synthetic_difficulty.py); both are 0 by default, so every object counts."""

    def __init__(self, num_images: int = 1000, image_size: int = 320, seed: int = 0, split: str = "train",
                 min_size: float = 8, max_size: float | None = None, max_objects: int = 6,
                 empty_fraction: float = 0.05, min_visible: float = 0.4, ignore_below_visible: float = 0.0,
                 ignore_below_size: float = 0.0, transform=None):
        super().__init__(f"synthetic[{split}]", transform)
        if not 1 <= max_objects <= 255:
            raise ValueError(f"max_objects must be in 1..255, got {max_objects}")
        self.class_names = list(SHAPE_NAMES)
        self.num_images, self.size, self.seed, self.split = num_images, image_size, seed, split
        self.min_size, self.max_size = min_size, max_size or image_size / 2
        self.max_objects, self.empty_fraction, self.min_visible = max_objects, empty_fraction, min_visible
        self.ignore_below_visible, self.ignore_below_size = ignore_below_visible, ignore_below_size
        self._split_code = zlib.crc32(split.encode())  # stable across processes, unlike hash()
        self._noise = noise_bank(seed, image_size)

    def __len__(self) -> int:
        return self.num_images

    def file(self, index: int) -> str:
        return f"synthetic/{self.split}/{index:06d}"

    def load(self, index: int) -> tuple[np.ndarray, dict]:
        rng = np.random.default_rng([self.seed, self._split_code, index])
        image, boxes, labels, visible = render(rng, self.size, self._noise, self.min_size, self.max_size,
                                               self.max_objects, self.empty_fraction, self.min_visible)
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        visible = np.asarray(visible, np.float32)
        longer_side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        ignore = (visible < self.ignore_below_visible) | (longer_side < self.ignore_below_size)
        ann = {"image_id": index, "boxes": boxes, "labels": np.asarray(labels, np.int64), "ignore": ignore,
               "visible": visible, "height": self.size, "width": self.size}
        return image, ann

    def load_image(self, index: int) -> np.ndarray:
        return self.load(index)[0]

    def get_annotation(self, index: int) -> dict:
        """Renders the image too (about a millisecond): occlusion decides which boxes exist."""
        return self.load(index)[1]
