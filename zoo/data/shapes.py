"""The shape classes of the synthetic data set, as unit outlines, and how to draw one.

Every class is a closed outline in [-1, 1]^2, either filled or stroked (the ring); classes differ by
outline, never by colour or size, so a detector must learn shape.
"""
from __future__ import annotations

import cv2
import numpy as np

_SUBPIXEL_BITS = 4  # cv2 fixed-point precision: keeps small shapes symmetric


def _regular(n: int) -> np.ndarray:
    t = 2 * np.pi * np.arange(n) / n
    return np.stack([np.cos(t), np.sin(t)], axis=1)


_CIRCLE = _regular(48)
_ARM = 0.3  # half-width of a cross arm: thick enough to stay a cross at 8 px
_RING = 0.45  # ring stroke width as a fraction of the radius: the hole stays visible at 8 px
# Each class: (outline, stroke width relative to the half-extent; 0 means filled).
SHAPES: dict[str, tuple[np.ndarray, float]] = {
    "circle": (_CIRCLE, 0.0),
    "square": (np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float), 0.0),
    "triangle": (np.array([[0, -1], [1, 1], [-1, 1]], float), 0.0),
    "cross": (np.array([[-_ARM, -1], [_ARM, -1], [_ARM, -_ARM], [1, -_ARM], [1, _ARM], [_ARM, _ARM], [_ARM, 1],
                        [-_ARM, 1], [-_ARM, _ARM], [-1, _ARM], [-1, -_ARM], [-_ARM, -_ARM]], float), 0.0),
    "ring": ((1 - _RING / 2) * _CIRCLE, _RING),
}
SHAPE_NAMES = tuple(SHAPES)


def outline(kind: str, half_w: float, half_h: float, angle: float) -> tuple[np.ndarray, int]:
    """The class's outline scaled to half-extents (half_w, half_h), rotated by ``angle`` radians, centred
    at 0, and its stroke thickness in pixels (0: filled)."""
    polygon, stroke = SHAPES[kind]
    c, s = np.cos(angle), np.sin(angle)
    points = polygon @ (np.array([[c, s], [-s, c]]) * np.array([[half_w], [half_h]]))  # scale, then rotate
    return points, (max(2, round(stroke * min(half_w, half_h))) if stroke else 0)


def extent(points: np.ndarray, thickness: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper (x, y) corners of what ``draw`` paints, with a pixel of slack for rounding."""
    pad = thickness / 2 + 1
    return points.min(axis=0) - pad, points.max(axis=0) + pad


def draw(canvas: np.ndarray, points: np.ndarray, thickness: int, value) -> None:
    """Paint the shape onto ``canvas`` (an image or an id map); cv2 clips at the canvas border."""
    pts = [np.round(points * (1 << _SUBPIXEL_BITS)).astype(np.int32)]
    if thickness:
        cv2.polylines(canvas, pts, True, value, thickness, cv2.LINE_8, shift=_SUBPIXEL_BITS)
    else:
        cv2.fillPoly(canvas, pts, value, cv2.LINE_8, shift=_SUBPIXEL_BITS)
