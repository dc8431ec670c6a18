"""torchvision's COCO detectors: ``ssd300_vgg16`` and ``fasterrcnn_resnet50_fpn`` (v1). Both are run here beside
torchvision with the same weights, and give its detections (tests/models/test_imports_torchvision.py)."""
from __future__ import annotations

from collections.abc import Mapping

import torch

from zoo.models.imports.catalog import FPN_ON_CORNERS, ImportSpec, register
from zoo.models.imports.classes import COCO, TORCHVISION_COCO, TORCHVISION_COCO_ROWS
from zoo.models.imports.keys import KeyMap, keep_rows
from zoo.models.imports.readers import read_torch_state

SSD_KEYS = KeyMap([
    (r"backbone\.scale_weight", "backbone.norms.conv4_3.weight"),
    (r"backbone\.features\.(\d+)\.(weight|bias)", r"backbone.to_conv4_3.\1.\2"),
    (r"backbone\.extra\.0\.7\.(\d+)\.(weight|bias)", r"backbone.to_fc7.\1.\2"),
    (r"backbone\.extra\.0\.(\d+)\.(weight|bias)", lambda m: f"backbone.to_conv5_3.{23 + int(m[1])}.{m[2]}"),
    (r"backbone\.extra\.(\d+)\.(\d+)\.(weight|bias)", lambda m: f"neck.extras.{int(m[1]) - 1}.{int(m[2]) // 2}.0.{m[3]}"),
    (r"head\.classification_head\.module_list\.(\d+)\.(weight|bias)", r"head.cls.\1.\2"),
    (r"head\.regression_head\.module_list\.(\d+)\.(weight|bias)", r"head.box.\1.\2"),
])

FASTER_RCNN_KEYS = KeyMap([
    (r"backbone\.body\.conv1\.(.+)", r"backbone.stem.0.\1"),
    (r"backbone\.body\.bn1\.(.+)", r"backbone.stem.1.\1"),
    (r"backbone\.body\.layer(\d)\.(.+)", lambda m: f"backbone.stages.{int(m[1]) - 1}.{m[2]}"),
    (r"backbone\.fpn\.inner_blocks\.(\d)\.0\.(.+)", r"neck.laterals.\1.\2"),
    (r"backbone\.fpn\.layer_blocks\.(\d)\.0\.(.+)", r"neck.outputs.\1.\2"),
    (r"rpn\.head\.conv\.0\.0\.(.+)", r"rpn.head.conv.\1"),
    (r"rpn\.head\.cls_logits\.(.+)", r"rpn.head.objectness.\1"),
    (r"rpn\.head\.bbox_pred\.(.+)", r"rpn.head.box.\1"),
    (r"roi_heads\.box_head\.(fc[67])\.(.+)", r"roi_head.features.\1.\2"),
    (r"roi_heads\.box_predictor\.cls_score\.(.+)", r"roi_head.cls.\1"),
    (r"roi_heads\.box_predictor\.bbox_pred\.(.+)", r"roi_head.box.\1"),
])


def _coco_rows(tensor: torch.Tensor, group: int) -> torch.Tensor:
    """torchvision's 91 class slots -> zoo's 81 (background and the 80 classes): the ten unused COCO ids go."""
    slots = len(TORCHVISION_COCO)
    if group == slots:
        return keep_rows(tensor, TORCHVISION_COCO_ROWS, slots)
    # box regression: 4 rows per class slot
    return keep_rows(tensor, [4 * r + j for r in TORCHVISION_COCO_ROWS for j in range(4)], 4 * slots)


def convert_ssd(state: Mapping[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    out = SSD_KEYS.rename(state, where)
    for name in [n for n in out if n.startswith("head.cls.")]:
        out[name] = _coco_rows(out[name], len(TORCHVISION_COCO))  # per default box: 91 class channels
    return out


def convert_faster_rcnn(state: Mapping[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    # an untrained torchvision model has BatchNorm's counters; the import's frozen BatchNorm keeps none
    state = {k: v for k, v in state.items() if not k.endswith(".num_batches_tracked")}
    out = FASTER_RCNN_KEYS.rename(state, where)
    for name in ("roi_head.cls.weight", "roi_head.cls.bias"):
        out[name] = _coco_rows(out[name], len(TORCHVISION_COCO))
    for name in ("roi_head.box.weight", "roi_head.box.bias"):
        out[name] = _coco_rows(out[name], 4 * len(TORCHVISION_COCO))
    return out


# torchvision's SSD300: priors on its own scales and steps; input 0-255 RGB minus 255 x its mean (0.48235, 0.45882,
# 0.40784), unscaled.
SSD_PRIORS = ("++model.priors={type: ssd_priors, aspect_ratios: [[2], [2, 3], [2, 3], [2, 3], [2], [2]], "
              "scales: [0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05], steps: [8, 16, 32, 64, 100, 300], clip: size}")

register(ImportSpec(
    source="torchvision", model="ssd300_vgg16", base="ssd300", data="coco", classes=COCO,
    overrides=(SSD_PRIORS, "++model.input_mean=[122.99925, 116.9991, 103.9992]", "++model.input_std=[1.0, 1.0, 1.0]",
               "++model.transforms.test={type: resize, size: 300, backend: torch}",
               "++model.test.score_threshold=0.01", "++model.test.nms_threshold=0.45",
               "++model.test.max_detections=200", "++model.test.topk_per_class=400", "++model.test.clip_before_nms=true"),
    read=read_torch_state, convert=convert_ssd,
    published="ssd300_vgg16_coco-b556d3b4.pth (torchvision SSD300_VGG16_Weights.COCO_V1): COCO val2017 box AP 25.1",
    checked="same detections as torchvision's model on BCCD test images, same weights",
    notes=("the ten unused COCO ids of torchvision's 91 class slots are left out: zoo's labels are the 80 classes",),
))

register(ImportSpec(
    source="torchvision", model="fasterrcnn_resnet50_fpn", base="fpn_r50", data="coco", classes=COCO,
    overrides=(*FPN_ON_CORNERS, "++model.roi_head.pooler.sampling_ratio=2", "++model.rpn.priors.round_corners=true",
               "++model.rpn.priors.floor_steps=true", "++model.transforms.test.backend=torch",
               "++model.transforms.train.backend=torch"),
    read=read_torch_state, convert=convert_faster_rcnn,
    published="fasterrcnn_resnet50_fpn_coco-258fb6c6.pth (torchvision FasterRCNN_ResNet50_FPN_Weights.COCO_V1): "
              "COCO val2017 box AP 37.0",
    checked="same detections as torchvision's model on BCCD test images, same weights",
    notes=("the ten unused COCO ids of torchvision's 91 class slots are left out: zoo's labels are the 80 classes",),
))
