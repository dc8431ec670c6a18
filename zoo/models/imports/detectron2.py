"""detectron2's COCO Faster R-CNN R50-C4 and R50-FPN (3x schedule) from its model-zoo ``.pkl`` files.

detectron2 cannot run here, so the key maps are checked against manifests of its checkpoints' names and shapes,
written from reading its code (tests/models/import_manifests/detectron2). Conventions set: BGR input (the stem conv's
input channels are reversed so zoo feeds RGB), the stride in the bottlenecks' 1x1 conv, anchors on cell corners
unrounded, ROIAlignV2 (aligned, adaptive sampling), background as the last class."""
from __future__ import annotations

from collections.abc import Mapping

import torch

from zoo.models.imports.catalog import ONE_PER_BATCH, ImportSpec, register
from zoo.models.imports.classes import COCO
from zoo.models.imports.keys import KeyMap, background_first, with_background_box_rows
from zoo.models.imports.readers import read_detectron2_pkl

_BN = r"(weight|bias|running_mean|running_var)"


def _block_rules(stage: str, target) -> list:
    """detectron2's bottlenecks ``<stage>.<i>.conv<j>[.norm]`` and ``.shortcut[.norm]`` -> torchvision's names under
    ``target(match)``; ``stage`` is a regex with one group (the res index, or empty)."""
    return [
        (stage + r"\.(\d+)\.conv([1-3])\.weight", lambda m: f"{target(m)}.{m[2]}.conv{m[3]}.weight"),
        (stage + r"\.(\d+)\.conv([1-3])\.norm\." + _BN, lambda m: f"{target(m)}.{m[2]}.bn{m[3]}.{m[4]}"),
        (stage + r"\.(\d+)\.shortcut\.weight", lambda m: f"{target(m)}.{m[2]}.downsample.0.weight"),
        (stage + r"\.(\d+)\.shortcut\.norm\." + _BN, lambda m: f"{target(m)}.{m[2]}.downsample.1.{m[3]}"),
    ]


def _stage(m) -> str:
    return f"backbone.stages.{int(m[1]) - 2}"  # res2..res5 -> stages 0..3


_RPN = [(r"proposal_generator\.rpn_head\.conv\.(weight|bias)", r"rpn.head.conv.\1"),
        (r"proposal_generator\.rpn_head\.objectness_logits\.(weight|bias)", r"rpn.head.objectness.\1"),
        (r"proposal_generator\.rpn_head\.anchor_deltas\.(weight|bias)", r"rpn.head.box.\1")]
_PREDICTOR = [(r"roi_heads\.box_predictor\.cls_score\.(weight|bias)", r"roi_head.cls.\1"),
              (r"roi_heads\.box_predictor\.bbox_pred\.(weight|bias)", r"roi_head.box.\1")]
_ANCHORS = [r"proposal_generator\.anchor_generator\.cell_anchors\.\d"]  # recomputed by zoo's anchor generator

C4_KEYS = KeyMap([
    (r"backbone\.stem\.conv1\.weight", "backbone.stem.0.weight"),
    (r"backbone\.stem\.conv1\.norm\." + _BN, r"backbone.stem.1.\1"),
    *_block_rules(r"backbone\.res([2-4])", _stage),
    *_RPN,
    *_block_rules(r"roi_heads\.res5()", lambda m: "roi_head.features.res5"),
    *_PREDICTOR,
], drop=_ANCHORS)

FPN_KEYS = KeyMap([
    (r"backbone\.fpn_lateral([2-5])\.(weight|bias)", lambda m: f"neck.laterals.{int(m[1]) - 2}.{m[2]}"),
    (r"backbone\.fpn_output([2-5])\.(weight|bias)", lambda m: f"neck.outputs.{int(m[1]) - 2}.{m[2]}"),
    (r"backbone\.bottom_up\.stem\.conv1\.weight", "backbone.stem.0.weight"),
    (r"backbone\.bottom_up\.stem\.conv1\.norm\." + _BN, r"backbone.stem.1.\1"),
    *_block_rules(r"backbone\.bottom_up\.res([2-5])", _stage),
    *_RPN,
    (r"roi_heads\.box_head\.fc1\.(weight|bias)", r"roi_head.features.fc6.\1"),
    (r"roi_heads\.box_head\.fc2\.(weight|bias)", r"roi_head.features.fc7.\1"),
    *_PREDICTOR,
], drop=_ANCHORS)


def _converter(keys: KeyMap):
    def convert(state: Mapping[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
        out = keys.rename(state, where)
        out["backbone.stem.0.weight"] = out["backbone.stem.0.weight"].flip(1)  # BGR-trained: zoo feeds RGB
        for name in ("roi_head.cls.weight", "roi_head.cls.bias"):
            out[name] = background_first(out[name], len(COCO) + 1)
        for name in ("roi_head.box.weight", "roi_head.box.bias"):
            out[name] = with_background_box_rows(out[name])
        return out
    return convert


# Shared by both: detectron2's pixel mean (BGR 103.53, 116.28, 123.675) in RGB order, no scaling; the stride in the
# 1x1 convs (its MSRA weights); ROIAlignV2; anchors on cell corners; one RoI regression per class.
_COMMON = ("++model.input_mean=[123.675, 116.28, 103.53]", "++model.input_std=[1.0, 1.0, 1.0]",
           "model.backbone.norm=frozen_bn", "++model.backbone.stride_in_1x1=true",
           "++model.rpn.priors.centre_offset=0.0", "model.roi_head.pooler.type=roi_align",
           "++model.roi_head.pooler.sampling_ratio=0", "++model.roi_head.pooler.aligned=true",
           "model.input_size=800", "model.transforms.test.max_size=1333", "model.transforms.train.max_size=1333",
           "model.roi_head.test.score_threshold=0.05", "model.roi_head.test.nms_threshold=0.5",
           "model.roi_head.test.max_detections=100", "++model.transforms.test.backend=pil",
           "++model.transforms.train.backend=pil", ONE_PER_BATCH)
_CHECKED = ("key map and shapes checked against a manifest of the checkpoint written from detectron2's code "
            "(tests/models/import_manifests/detectron2); outputs not compared (detectron2 does not run here)")

register(ImportSpec(
    source="detectron2", model="faster_rcnn_R_50_C4_3x", base="faster_rcnn_r50_c4", data="coco", classes=COCO,
    overrides=(*_COMMON, "++model.roi_head.box_features.stride_in_1x1=true",
               "model.roi_head.box_features.norm=frozen_bn", "model.roi_head.pooler.output_size=14",
               "model.rpn.priors.sizes=[[32, 64, 128, 256, 512]]", "model.rpn.priors.ratios=[0.5, 1.0, 2.0]",
               "model.rpn.test.pre_nms_top_n=6000", "model.rpn.test.post_nms_top_n=1000",
               "model.rpn.test.nms_threshold=0.7"),
    read=read_detectron2_pkl, convert=_converter(C4_KEYS),
    published="model_final_f97cb7.pkl (detectron2 COCO-Detection/faster_rcnn_R_50_C4_3x): COCO val2017 box AP 38.4",
    checked=_CHECKED,
))

register(ImportSpec(
    source="detectron2", model="faster_rcnn_R_50_FPN_3x", base="fpn_r50", data="coco", classes=COCO,
    overrides=(*_COMMON, "model.rpn.test.pre_nms_top_n=1000", "model.rpn.test.post_nms_top_n=1000",
               "model.rpn.test.nms_threshold=0.7", "model.size_divisor=32"),
    read=read_detectron2_pkl, convert=_converter(FPN_KEYS),
    published="model_final_280758.pkl (detectron2 COCO-Detection/faster_rcnn_R_50_FPN_3x): COCO val2017 box AP 40.2",
    checked=_CHECKED,
))
