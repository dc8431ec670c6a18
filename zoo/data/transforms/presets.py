"""The registered transforms: named recipes built from config nodes such as ``{type: ssd_train, size: 320}``.

Normalisation is not done here (zoo.data.collate does it once per batch); images stay uint8/float32 HWC.
"""
from __future__ import annotations

import albumentations as A

from zoo.data.transforms.ops import (Expand, KeepRatioResize, MinIoURandomCrop, PCALighting, ScaledCentreCrop,
                                     TorchResize)
from zoo.data.transforms.pipeline import AlbumentationsPipeline
from zoo.registry import TRANSFORMS

IMAGENET_MEAN = (123.675, 116.28, 103.53)  # RGB, 0-255: the canvas colour of the SSD zoom-out


def _sampling(mean, expand_ratio: float, expand: bool, min_iou_crop: bool, flip: float) -> list:
    """SSD's geometric sampling: zoom-out onto a mean-coloured canvas, min-IoU crop, mirror."""
    ops = []
    if expand:
        ops.append(Expand(expand_ratio, fill=tuple(round(m) for m in mean), p=0.5))
    if min_iou_crop:
        ops.append(MinIoURandomCrop())
    if flip:
        ops.append(A.HorizontalFlip(p=flip))
    return ops


def _photometric() -> A.BasicTransform:
    """SSD's photometric distortion (its Caffe distort_param): brightness +-32, then contrast x0.5..1.5 either
    before or after saturation x0.5..1.5 and hue +-18 (OpenCV's 0-180 hue units, so +-36 degrees), each
    step on its own with probability 0.5. After the resize rather than first (as in SSD): colour changes
    commute with geometry, and on the resized pixels the cost no longer grows with the input or the
    zoom-out canvas (which they now tint as well)."""
    def contrast():
        return A.RandomBrightnessContrast(brightness_limit=0.0, contrast_limit=0.5, p=0.5)  # x alpha, no mean

    def saturation_hue():
        return [A.ColorJitter(brightness=0.0, contrast=0.0, saturation=0.5, hue=0.0, p=0.5),
                A.ColorJitter(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.1, p=0.5)]

    brightness = A.RandomBrightnessContrast(brightness_limit=32 / 255, contrast_limit=0.0, p=0.5)  # + beta * 255
    # albumentations' Sequential fires with p = 0.5 unless told otherwise; inside OneOf, p weighs the choice
    return A.Sequential([brightness, A.OneOf([A.Sequential([contrast(), *saturation_hue()], p=1.0),
                                              A.Sequential([*saturation_hue(), contrast()], p=1.0)], p=1.0)], p=1.0)


@TRANSFORMS.register("ssd_train")
def ssd_train(size: int = 320, mean=IMAGENET_MEAN, expand_ratio: float = 4.0, photometric: bool = True,
              expand: bool = True, min_iou_crop: bool = True, flip: bool = True) -> AlbumentationsPipeline:
    """The SSD recipe; each flag switches one step off for the paper's augmentation ablation."""
    ops = [*_sampling(mean, expand_ratio, expand, min_iou_crop, 0.5 if flip else 0.0), A.Resize(size, size)]
    return AlbumentationsPipeline(ops + ([_photometric()] if photometric else []))


@TRANSFORMS.register("resize")
def resize(size: int = 320, backend: str = "cv2") -> AlbumentationsPipeline:
    """Evaluation for fixed-input detectors: stretch to size x size (no keep-ratio), as SSD does. ``backend``
    ``torch``: in float with torch's bilinear interpolation, as torchvision's SSD (imported detectors)."""
    if backend not in ("cv2", "torch"):
        raise ValueError(f"resize: backend must be cv2 or torch, got '{backend}'")
    return AlbumentationsPipeline([A.Resize(size, size) if backend == "cv2" else TorchResize(size, size)])


@TRANSFORMS.register("original_size")
def original_size() -> AlbumentationsPipeline:
    """Evaluation at each image's own size (a batch pads them to its largest): CornerNet's single-scale test as
    its release and MMDetection run it."""
    return AlbumentationsPipeline([])


@TRANSFORMS.register("keep_ratio_resize")
def keep_ratio_resize(short_side: int = 800, max_size: int = 1333, flip: float = 0.0, photometric: bool = False,
                      expand: bool = False, min_iou_crop: bool = False, mean=IMAGENET_MEAN,
                      expand_ratio: float = 4.0, backend: str = "cv2") -> AlbumentationsPipeline:
    """Two-stage detectors: keep the aspect ratio; ``flip`` is the horizontal-flip probability (training).
    ``expand``, ``min_iou_crop`` and ``photometric`` add SSD's sampling and colour steps (off by
    default, as in Faster R-CNN; the CPU-sized models trained from scratch need them). ``backend``: see
    KeepRatioResize (``torch`` for detectors imported from torchvision, ``pil`` for detectron2's)."""
    if isinstance(flip, bool) or not 0.0 <= float(flip) <= 1.0:  # `flip: true` would mirror every image
        raise ValueError(f"keep_ratio_resize: flip is a probability in [0, 1] (0.5 for the usual recipe), got {flip!r}")
    ops = [*_sampling(mean, expand_ratio, expand, min_iou_crop, flip), KeepRatioResize(short_side, max_size, backend=backend)]
    return AlbumentationsPipeline(ops + ([_photometric()] if photometric else []))


@TRANSFORMS.register("cornernet_train")
def cornernet_train(size: int = 511, scales=(0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3), border: int = 128,
                    flip: bool = True, photometric: bool = True) -> AlbumentationsPipeline:
    """CornerNet's recipe: a window of size x scale around a random centre (``border`` px from the
    edges), resized to size x size, mirrored, then brightness / contrast / saturation jitter of 0.4 in
    random order and PCA lighting noise (std 0.1)."""
    ops = [ScaledCentreCrop(size, scales, border), A.Resize(size, size), A.HorizontalFlip(p=0.5 if flip else 0.0)]
    if photometric:
        ops += [A.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.0, p=1.0), PCALighting(0.1)]
    return AlbumentationsPipeline(ops)
