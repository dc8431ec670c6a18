"""The data side: data sets, transforms, collate and samplers.

Importing this package registers the data sets (``synthetic``, ``voc``, ``coco``) in ``DATASETS`` and the
transforms (``ssd_train``, ``resize``, ``keep_ratio_resize``) in ``TRANSFORMS``.
"""
from zoo.data.base import DetectionDataset, RecordDataset, read_image
from zoo.data.build import build_dataset, build_transform
from zoo.data.coco import COCODataset
from zoo.data.collate import Collate, to_original
from zoo.data.errors import DataError, DataWarning
from zoo.data.loader import build_loader, shard_loader
from zoo.data.sampler import ShardedBatches, TrainSampler
from zoo.data.synthetic import SyntheticShapes
from zoo.data.transforms import AlbumentationsPipeline, keep_ratio_resize, resize, ssd_train
from zoo.data.voc import VOC_CLASSES, VOCDataset
from zoo.data.voc2coco import voc_to_coco

__all__ = [
    "AlbumentationsPipeline", "COCODataset", "Collate", "DataError", "DataWarning", "DetectionDataset",
    "RecordDataset", "ShardedBatches", "SyntheticShapes", "TrainSampler", "VOCDataset", "VOC_CLASSES", "build_dataset",
    "build_loader", "build_transform", "shard_loader", "keep_ratio_resize", "read_image", "resize", "ssd_train", "to_original",
    "voc_to_coco",
]
