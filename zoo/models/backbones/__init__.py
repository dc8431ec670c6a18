"""Backbones. Each returns a list of feature maps and declares ``out_channels`` and ``strides``."""
from zoo.models.backbones import hourglass, image, resnet, resnet_lite, vgg  # noqa: F401  (registration)
