"""Data types that travel between the data side, the models and the evaluators."""
from zoo.structures.batch import Batch, ImageMeta

__all__ = ["Batch", "ImageMeta"]
