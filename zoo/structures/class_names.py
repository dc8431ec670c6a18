"""Class names of the standard data sets, in their label order: shared by the VOC reader and the detectors imported
from libraries trained on them."""
from __future__ import annotations

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
    "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
