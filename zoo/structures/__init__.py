"""Data types that travel between the data side, the models and the evaluators."""
from zoo.structures.batch import Batch, ImageMeta, per_image_sizes

__all__ = ["Batch", "ImageMeta", "per_image_sizes"]
