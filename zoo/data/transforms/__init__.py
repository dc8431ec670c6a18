"""Registered transforms (``ssd_train``, ``resize``, ``keep_ratio_resize``) and the pieces they are made of."""
from zoo.data.transforms.ops import Expand, KeepRatioResize, MinIoURandomCrop
from zoo.data.transforms.pipeline import AlbumentationsPipeline
from zoo.data.transforms.presets import IMAGENET_MEAN, keep_ratio_resize, resize, ssd_train

__all__ = ["AlbumentationsPipeline", "Expand", "IMAGENET_MEAN", "KeepRatioResize", "MinIoURandomCrop",
           "keep_ratio_resize", "resize", "ssd_train"]
