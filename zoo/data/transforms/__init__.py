"""Registered transforms (``ssd_train``, ``resize``, ``keep_ratio_resize``, ``cornernet_train``) and the pieces they
are made of."""
from zoo.data.transforms.ops import Expand, KeepRatioResize, MinIoURandomCrop, PCALighting, ScaledCentreCrop
from zoo.data.transforms.pipeline import AlbumentationsPipeline
from zoo.data.transforms.presets import IMAGENET_MEAN, cornernet_train, keep_ratio_resize, resize, ssd_train

__all__ = ["AlbumentationsPipeline", "Expand", "IMAGENET_MEAN", "KeepRatioResize", "MinIoURandomCrop", "PCALighting",
           "ScaledCentreCrop", "cornernet_train", "keep_ratio_resize", "resize", "ssd_train"]
