"""Class names of the data sets published detectors were trained on, in their libraries' label order."""
from __future__ import annotations

from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights

# torchvision's 91 COCO slots: background, then the COCO category ids 1..90, ten of them unused ("N/A").
TORCHVISION_COCO = tuple(FasterRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"])
# The 80 classes, in category-id order: how detectron2, MMDetection and zoo's COCO reader number them.
COCO = tuple(name for name in TORCHVISION_COCO[1:] if name != "N/A")
# torchvision's rows of the 80 classes, background first (its row 0).
TORCHVISION_COCO_ROWS = (0, *[i for i, name in enumerate(TORCHVISION_COCO) if i and name != "N/A"])
