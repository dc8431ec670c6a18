"""Geometric steps the detection recipes need and albumentations lacks, as albumentations DualTransforms.

Boxes reach ``apply_to_bboxes`` normalised to the current image ([0, 1] x [0, 1], extra columns carry
the label fields), and albumentations clips and filters them after every step. Random draws use the
op's ``random_generator``, which the pipeline seeds per sample.
"""
from __future__ import annotations

import math

import albumentations as A
import cv2
import numpy as np
import torch
from PIL import Image


class Expand(A.DualTransform):
    """SSD "zoom out": the image on a canvas up to ``max_ratio`` times larger, filled with ``fill``, at a
    random place. albumentations pads to fixed sizes or by fixed amounts, not by a random ratio."""

    def __init__(self, max_ratio: float = 4.0, fill=(0, 0, 0), p: float = 0.5):
        super().__init__(p=p)
        self.max_ratio = max_ratio
        self.fill = tuple(fill)

    def get_params_dependent_on_data(self, params: dict, data: dict) -> dict:
        h, w = params["shape"][:2]
        ratio = self.random_generator.uniform(1, self.max_ratio)
        canvas_h, canvas_w = int(h * ratio), int(w * ratio)
        top = int(self.random_generator.integers(0, canvas_h - h + 1))
        left = int(self.random_generator.integers(0, canvas_w - w + 1))
        return {"canvas": (canvas_h, canvas_w), "top": top, "left": left}

    def apply(self, img: np.ndarray, canvas, top: int, left: int, **params) -> np.ndarray:
        bottom, right = canvas[0] - top - img.shape[0], canvas[1] - left - img.shape[1]
        # cv2 fills the border ~50x faster than a numpy broadcast assignment of a 3-channel colour
        return cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=self.fill)

    def apply_to_bboxes(self, bboxes: np.ndarray, canvas, top: int, left: int, shape, **params) -> np.ndarray:
        (h, w), (canvas_h, canvas_w) = shape[:2], canvas
        out = bboxes.copy()
        out[:, [0, 2]] = (bboxes[:, [0, 2]] * w + left) / canvas_w
        out[:, [1, 3]] = (bboxes[:, [1, 3]] * h + top) / canvas_h
        return out

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("max_ratio", "fill")


def _iou(crops: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU matrix (crops x boxes) of xyxy arrays."""
    lt = np.maximum(crops[:, None, :2], boxes[None, :, :2])
    rb = np.minimum(crops[:, None, 2:], boxes[None, :, 2:4])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_c, area_b = np.prod(crops[:, 2:] - crops[:, :2], axis=1), np.prod(boxes[:, 2:4] - boxes[:, :2], axis=1)
    return inter / (area_c[:, None] + area_b[None, :] - inter)


def _centres_inside(crops: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(crops x boxes) mask of box centres strictly inside each crop."""
    centres = (boxes[None, :, :2] + boxes[None, :, 2:4]) / 2
    return np.all((centres > crops[:, None, :2]) & (centres < crops[:, None, 2:]), axis=2)


class MinIoURandomCrop(A.DualTransform):
    """SSD patch sampling: draw a minimum IoU, "any patch" (``any_patch``) or "keep the whole image", then
    try ``max_tries`` patches of scale ``min_scale``..1 and aspect 1/max_aspect..max_aspect for one that
    overlaps some box at least that much and holds a box centre; if none does, draw again (as the
    reference code does). The options are SSD's seven samplers (its Caffe batch_sampler). Boxes whose
    centre falls outside the patch are dropped. albumentations' bbox-safe crops keep every box instead."""

    def __init__(self, min_ious=(0.1, 0.3, 0.5, 0.7, 0.9), min_scale: float = 0.3, max_aspect: float = 2.0,
                 max_tries: int = 50, any_patch: bool = True, p: float = 1.0):
        super().__init__(p=p)
        self.min_ious, self.min_scale = tuple(min_ious), min_scale
        self.max_aspect, self.max_tries, self.any_patch = max_aspect, max_tries, any_patch

    def get_params_dependent_on_data(self, params: dict, data: dict) -> dict:
        h, w = params["shape"][:2]
        boxes = np.asarray(data["bboxes"])[:, :4] * (w, h, w, h)
        options = self.min_ious + ((-np.inf,) if self.any_patch else ())  # -inf: any patch holding a centre
        while True:  # ends: "keep the whole image" is drawn with probability 1 / (len(options) + 1) each round
            choice = int(self.random_generator.integers(len(options) + 1))
            if choice == len(options):
                return {"crop": np.array([0, 0, w, h])}
            crop = self._sample(w, h, boxes, options[choice])
            if crop is not None:
                return {"crop": crop}

    def _sample(self, w: int, h: int, boxes: np.ndarray, min_iou: float) -> np.ndarray | None:
        """The first acceptable of ``max_tries`` random patches, drawn and tested all at once."""
        sizes = self.random_generator.uniform(self.min_scale, 1, (self.max_tries, 2)) * (w, h)
        corners = self.random_generator.uniform(0, 1, (self.max_tries, 2)) * ((w, h) - sizes)
        crops = np.concatenate([corners, corners + sizes], axis=1).astype(int)
        ok = np.abs(np.log(sizes[:, 1] / sizes[:, 0])) <= np.log(self.max_aspect)
        if len(boxes):  # a negative image takes any patch
            ok &= _centres_inside(crops, boxes).any(axis=1) & (_iou(crops, boxes).max(axis=1) >= min_iou)
        return crops[np.argmax(ok)] if ok.any() else None

    def apply(self, img: np.ndarray, crop, **params) -> np.ndarray:
        return img[crop[1]:crop[3], crop[0]:crop[2]]

    def apply_to_bboxes(self, bboxes: np.ndarray, crop, shape, **params) -> np.ndarray:
        h, w = shape[:2]
        pixels = bboxes[:, :4] * (w, h, w, h)
        keep = _centres_inside(crop[None], pixels)[0]
        out = bboxes[keep].copy()
        crop_w, crop_h = crop[2] - crop[0], crop[3] - crop[1]
        out[:, :4] = (pixels[keep] - np.tile(crop[:2], 2)) / (crop_w, crop_h, crop_w, crop_h)
        return out  # albumentations clips the boxes to the patch afterwards

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("min_ious", "min_scale", "max_aspect", "max_tries", "any_patch")


class KeepRatioResize(A.DualTransform):
    """Short side to ``short_side`` unless that makes the long side exceed ``max_size`` (Faster R-CNN's resize).
    albumentations' SmallestMaxSize and LongestMaxSize each honour only one of the two limits.

    ``backend``: ``cv2`` resizes the 8-bit image to the rounded size; ``torch`` resizes it as float with torch's
    bilinear interpolation to the size torch's scale factor gives (floored), no rounding back to 8 bits: what
    torchvision's detection models do inside their forward, so imported ones see the same pixels; ``pil`` resizes the
    8-bit image with Pillow's bilinear filter to sizes rounded half up, as detectron2's ResizeShortestEdge does."""

    BACKENDS = ("cv2", "torch", "pil")

    def __init__(self, short_side: int = 800, max_size: int = 1333, interpolation: int = cv2.INTER_LINEAR,
                 backend: str = "cv2", p: float = 1.0):
        super().__init__(p=p)
        if backend not in self.BACKENDS:
            raise ValueError(f"keep_ratio_resize: backend must be one of {self.BACKENDS}, got '{backend}'")
        self.short_side, self.max_size, self.interpolation, self.backend = short_side, max_size, interpolation, backend

    def get_params_dependent_on_data(self, params: dict, data: dict) -> dict:
        h, w = params["shape"][:2]
        scale = min(self.short_side / min(h, w), self.max_size / max(h, w))
        if self.backend == "torch":
            return {"out_size": (max(1, math.floor(h * scale)), max(1, math.floor(w * scale))), "scale": scale}
        if self.backend == "pil":
            return {"out_size": (max(1, int(h * scale + 0.5)), max(1, int(w * scale + 0.5))), "scale": scale}
        return {"out_size": (max(1, round(h * scale)), max(1, round(w * scale))), "scale": scale}

    def apply(self, img: np.ndarray, out_size, interpolation: int, scale: float = 1.0, **params) -> np.ndarray:
        if self.backend == "torch":
            return torch_bilinear(img, scale=scale)
        if self.backend == "pil":
            return np.asarray(Image.fromarray(img).resize((out_size[1], out_size[0]), Image.BILINEAR))
        return cv2.resize(img, (out_size[1], out_size[0]), interpolation=interpolation)

    def apply_to_bboxes(self, bboxes: np.ndarray, **params) -> np.ndarray:
        return bboxes  # normalised coordinates do not change under a resize

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("short_side", "max_size", "interpolation", "backend")


def torch_bilinear(img: np.ndarray, size: tuple[int, int] | None = None, scale: float | None = None) -> np.ndarray:
    """An HxWxC image resized as float with torch's bilinear interpolation (to ``size`` (h, w), or by ``scale`` with
    the size floored), as torchvision's detection transform resizes; cv2's float resize differs by up to 1e-3."""
    image = torch.from_numpy(np.ascontiguousarray(img, np.float32)).permute(2, 0, 1)[None]
    if size is not None:
        out = torch.nn.functional.interpolate(image, size=size, mode="bilinear", align_corners=False)
    else:
        out = torch.nn.functional.interpolate(image, scale_factor=scale, mode="bilinear", recompute_scale_factor=True,
                                              align_corners=False)
    return out[0].permute(1, 2, 0).numpy()


class TorchResize(A.DualTransform):
    """Stretch to ``height`` x ``width`` with torch_bilinear (torchvision's SSD resizes so)."""

    def __init__(self, height: int, width: int, p: float = 1.0):
        super().__init__(p=p)
        self.height, self.width = height, width

    def apply(self, img: np.ndarray, **params) -> np.ndarray:
        return torch_bilinear(img, size=(self.height, self.width))

    def apply_to_bboxes(self, bboxes: np.ndarray, **params) -> np.ndarray:
        return bboxes

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("height", "width")


def _border(border: int, size: int) -> int:
    """CornerNet's margin for the crop centre: ``border`` halved until it fits twice into ``size``."""
    while border > 1 and size - 2 * border <= 0:
        border //= 2
    return border


class ScaledCentreCrop(A.DualTransform):
    """CornerNet's random crop: a square window of ``size`` x a random scale from ``scales``, centred on a
    random pixel at least ``border`` from the image's edges, on a black canvas where it leaves the
    image; resized to ``size`` afterwards, objects end up 1/scale times their native size.
    albumentations' crops stay inside the image and do not draw the scale from a list."""

    def __init__(self, size: int = 511, scales=(0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3), border: int = 128,
                 p: float = 1.0):
        super().__init__(p=p)
        self.size, self.scales, self.border = size, tuple(scales), border

    def get_params_dependent_on_data(self, params: dict, data: dict) -> dict:
        h, w = params["shape"][:2]
        side = int(self.size * self.scales[int(self.random_generator.integers(len(self.scales)))])
        bx, by = _border(self.border, w), _border(self.border, h)
        cx = int(self.random_generator.integers(bx, max(bx + 1, w - bx)))
        cy = int(self.random_generator.integers(by, max(by + 1, h - by)))
        return {"origin": (cx - side // 2, cy - side // 2), "side": side}

    def apply(self, img: np.ndarray, origin, side: int, **params) -> np.ndarray:
        x0, y0 = origin
        canvas = np.zeros((side, side, *img.shape[2:]), img.dtype)
        sx, sy = max(x0, 0), max(y0, 0)  # the part of the window that lies on the image
        ex, ey = min(x0 + side, img.shape[1]), min(y0 + side, img.shape[0])
        if ex > sx and ey > sy:
            canvas[sy - y0:ey - y0, sx - x0:ex - x0] = img[sy:ey, sx:ex]
        return canvas

    def apply_to_bboxes(self, bboxes: np.ndarray, origin, side: int, shape, **params) -> np.ndarray:
        h, w = shape[:2]
        out = bboxes.copy()
        out[:, [0, 2]] = (bboxes[:, [0, 2]] * w - origin[0]) / side
        out[:, [1, 3]] = (bboxes[:, [1, 3]] * h - origin[1]) / side
        return out  # albumentations clips the boxes to the window and drops those left outside

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("size", "scales", "border")


class PCALighting(A.ImageOnlyTransform):
    """AlexNet's lighting noise, as CornerNet trains with it: each RGB pixel shifted along ImageNet's colour
    principal components by N(0, ``std``) times their eigenvalues. albumentations' FancyPCA takes the
    components of each image instead of ImageNet's."""

    EIGENVALUES = np.array([0.2175, 0.0188, 0.0045])
    EIGENVECTORS = np.array([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]])

    def __init__(self, std: float = 0.1, p: float = 1.0):
        super().__init__(p=p)
        self.std = std

    def get_params(self) -> dict:
        return {"alpha": self.random_generator.normal(0.0, self.std, 3)}

    def apply(self, img: np.ndarray, alpha, **params) -> np.ndarray:
        shift = 255.0 * self.EIGENVECTORS @ (alpha * self.EIGENVALUES)  # images are 0-255 RGB here
        return np.clip(img.astype(np.float32) + shift.astype(np.float32), 0, 255).astype(img.dtype)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("std",)
