"""MMDetection's COCO SSD300, Faster R-CNN R50-FPN (1x) and CornerNet Hourglass-104 from its ``.pth`` files
(``{"meta": ..., "state_dict": ...}``).

MMDetection cannot run here, so the key maps are checked against manifests of its checkpoints' names and shapes,
written from reading its code (tests/models/import_manifests/mmdet)."""
from __future__ import annotations

from collections.abc import Mapping

import torch

from zoo.models.imports.catalog import FPN_ON_CORNERS, ONE_PER_BATCH, ImportSpec, register
from zoo.models.imports.classes import COCO
from zoo.models.imports.keys import KeyMap, background_first, with_background_box_rows
from zoo.models.imports.readers import read_torch_state

_BN = r"(weight|bias|running_mean|running_var)"
_CHECKED = ("key map and shapes checked against a manifest of the checkpoint written from MMDetection's code "
            "(tests/models/import_manifests/mmdet); outputs not compared (MMDetection does not run here)")

SSD_KEYS = KeyMap([
    (r"backbone\.features\.(0|2|5|7|10|12|14|17|19|21)\.(weight|bias)", r"backbone.to_conv4_3.\1.\2"),
    (r"backbone\.features\.(24|26|28)\.(weight|bias)", r"backbone.to_conv5_3.\1.\2"),
    (r"backbone\.features\.31\.(weight|bias)", r"backbone.to_fc7.1.\1"),
    (r"backbone\.features\.33\.(weight|bias)", r"backbone.to_fc7.3.\1"),
    (r"neck\.l2_norm\.weight", "backbone.norms.conv4_3.weight"),
    (r"neck\.extra_layers\.(\d)\.([01])\.conv\.(weight|bias)", r"neck.extras.\1.\2.0.\3"),
    (r"bbox_head\.cls_convs\.(\d)\.0\.(weight|bias)", r"head.cls.\1.\2"),
    (r"bbox_head\.reg_convs\.(\d)\.0\.(weight|bias)", r"head.box.\1.\2"),
])

FASTER_RCNN_KEYS = KeyMap([
    (r"backbone\.conv1\.weight", "backbone.stem.0.weight"),
    (r"backbone\.bn1\." + _BN, r"backbone.stem.1.\1"),
    (r"backbone\.layer([1-4])\.(\d+)\.(conv[123]\.weight|bn[123]\.\w+|downsample\.[01]\.\w+)",
     lambda m: f"backbone.stages.{int(m[1]) - 1}.{m[2]}.{m[3]}"),
    (r"neck\.lateral_convs\.([0-3])\.conv\.(weight|bias)", r"neck.laterals.\1.\2"),
    (r"neck\.fpn_convs\.([0-3])\.conv\.(weight|bias)", r"neck.outputs.\1.\2"),
    (r"rpn_head\.rpn_conv\.(weight|bias)", r"rpn.head.conv.\1"),
    (r"rpn_head\.rpn_cls\.(weight|bias)", r"rpn.head.objectness.\1"),
    (r"rpn_head\.rpn_reg\.(weight|bias)", r"rpn.head.box.\1"),
    (r"roi_head\.bbox_head\.shared_fcs\.([01])\.(weight|bias)", lambda m: f"roi_head.features.fc{6 + int(m[1])}.{m[2]}"),
    (r"roi_head\.bbox_head\.fc_cls\.(weight|bias)", r"roi_head.cls.\1"),
    (r"roi_head\.bbox_head\.fc_reg\.(weight|bias)", r"roi_head.box.\1"),
], drop=[r".*\.num_batches_tracked"])  # BatchNorm's counter: zoo's frozen BatchNorm keeps none

_CORNER = {"tl": "top_left", "br": "bottom_right"}
# mmcv's ConvModule (.conv, .bn) is zoo's conv_block (.0, .1); CornerPool's branches pool top/left (tl) and
# bottom/right (br) in the same order as zoo's.
_POOL_PART = {"direction1_conv": "branches.0", "direction2_conv": "branches.1", "aftpool_conv": "merge",
              "conv1": "shortcut", "conv2": "out"}
_OUTPUT = {"heat": "heat", "off": "offset", "emb": "embed"}


def _module(prefix):
    return lambda m: f"{prefix(m)}.{0 if m['part'] == 'conv' else 1}.{m['leaf']}"


_CONV_MODULE = r"\.(?P<part>conv|bn)\.(?P<leaf>\w+)"
CORNERNET_KEYS = KeyMap([
    (r"backbone\.stem\.0" + _CONV_MODULE, _module(lambda m: "backbone.stem.0")),
    (r"backbone\.stem\.1\.0\.(.+)", r"backbone.stem.1.\1"),
    (r"backbone\.hourglass_modules\.(\d+)\.(.+)", r"backbone.hourglasses.\1.\2"),
    (r"backbone\.inters\.(\d+)\.(.+)", r"backbone.merge_blocks.\1.\2"),
    (r"backbone\.conv1x1s\.(?P<i>\d+)" + _CONV_MODULE, _module(lambda m: f"backbone.merge_input.{m['i']}")),
    (r"backbone\.remap_convs\.(?P<i>\d+)" + _CONV_MODULE, _module(lambda m: f"backbone.merge_output.{m['i']}")),
    (r"backbone\.out_convs\.(?P<i>\d+)" + _CONV_MODULE, _module(lambda m: f"backbone.cnvs.{m['i']}")),
    (r"bbox_head\.(?P<c>tl|br)_pool\.(?P<i>\d+)\.(?P<sub>direction[12]_conv|aftpool_conv|conv[12])" + _CONV_MODULE,
     _module(lambda m: f"head.stacks.{m['i']}.{_CORNER[m['c']]}.pool.{_POOL_PART[m['sub']]}")),
    (r"bbox_head\.(?P<c>tl|br)_(?P<kind>heat|off|emb)\.(?P<i>\d+)\.(?P<j>[01])\.conv\.(?P<leaf>weight|bias)",
     lambda m: f"head.stacks.{m['i']}.{_CORNER[m['c']]}.{_OUTPUT[m['kind']]}.{2 * int(m['j'])}.{m['leaf']}"),
])


def convert_ssd(state: Mapping[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    out = SSD_KEYS.rename(state, where)
    for name in [n for n in out if n.startswith("head.cls.")]:
        out[name] = background_first(out[name], len(COCO) + 1)  # per default box: 81 channels, background last
    return out


def convert_faster_rcnn(state: Mapping[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    out = FASTER_RCNN_KEYS.rename(state, where)
    for name in ("roi_head.cls.weight", "roi_head.cls.bias"):
        out[name] = background_first(out[name], len(COCO) + 1)
    for name in ("roi_head.box.weight", "roi_head.box.bias"):
        out[name] = with_background_box_rows(out[name])
    return out


def convert_cornernet(state: Mapping[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    return CORNERNET_KEYS.rename(state, where)  # heatmaps: 80 sigmoid channels in both, no background


register(ImportSpec(
    source="mmdet", model="ssd300_coco", base="ssd300", data="coco", classes=COCO,
    overrides=("model.priors.scales=[0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05]",
               "++model.input_mean=[123.675, 116.28, 103.53]", "++model.input_std=[1.0, 1.0, 1.0]",
               "model.test.score_threshold=0.02", "model.test.nms_threshold=0.45", "model.test.max_detections=200",
               "++model.test.clip_before_nms=true", "++model.test.topk_per_level=1000"),
    read=read_torch_state, convert=convert_ssd,
    published="ssd300_coco_20210803_015428-d231a06e.pth (MMDetection configs/ssd/ssd300_coco.py): COCO val2017 box "
              "AP 25.5",
    checked=_CHECKED,
))

register(ImportSpec(
    source="mmdet", model="faster_rcnn_r50_fpn_1x_coco", base="fpn_r50", data="coco", classes=COCO,
    overrides=(*FPN_ON_CORNERS, "++model.roi_head.pooler.sampling_ratio=0", "++model.roi_head.pooler.aligned=true"),
    read=read_torch_state, convert=convert_faster_rcnn,
    published="faster_rcnn_r50_fpn_1x_coco_20200130-047c8118.pth (MMDetection configs/faster_rcnn/"
              "faster-rcnn_r50_fpn_1x_coco.py): COCO val2017 box AP 37.4",
    checked=_CHECKED,
))

register(ImportSpec(
    source="mmdet", model="cornernet_hourglass104_mstest_8x6_210e_coco", base="cornernet_hg104", data="coco",
    classes=COCO,
    overrides=("model.pad_fill=mean", "++model.size_divisor=128", "model.transforms.test={type: original_size}",
               ONE_PER_BATCH),
    read=read_torch_state, convert=convert_cornernet,
    published="cornernet_hourglass104_mstest_8x6_210e_coco_20200825_150618-79b44c30.pth (MMDetection configs/"
              "cornernet): COCO val2017 box AP 41.2 with flip (zoo-eval tta=cornernet_flip)",
    checked=_CHECKED,
    notes=("MMDetection centres each image on a (h|127) x (w|127) canvas; zoo pads it at the bottom and right to a "
           "multiple of 128",
           "MMDetection scales corner coordinates by input size / heatmap size (511/128 for a 511 canvas); zoo by 4"),
))
