"""The papers' PyTorch ports: amdegroot/ssd.pytorch's SSD300 and luuuyi/RefineDet.PyTorch's RefineDet320/512 (VOC,
bare state dicts). Their code cannot run here; the key maps are checked against manifests of their state dicts'
names and shapes written from reading it (tests/models/import_manifests/ports). Both feed the network RGB 0-255
minus (123, 117, 104), unscaled, stretched to a square with cv2."""
from __future__ import annotations

from zoo.models.imports.catalog import ImportSpec, register
from zoo.models.imports.keys import KeyMap
from zoo.models.imports.readers import read_torch_state
from zoo.structures.class_names import VOC_CLASSES

_VGG = [
    (r"vgg\.(0|2|5|7|10|12|14|17|19|21)\.(weight|bias)", r"backbone.to_conv4_3.\1.\2"),
    (r"vgg\.(24|26|28)\.(weight|bias)", r"backbone.to_conv5_3.\1.\2"),
    (r"vgg\.31\.(weight|bias)", r"backbone.to_fc7.1.\1"),  # conv6, after pool5 (index 30)
    (r"vgg\.33\.(weight|bias)", r"backbone.to_fc7.3.\1"),  # conv7
]

SSD_KEYS = KeyMap([
    *_VGG,
    (r"L2Norm\.weight", "backbone.norms.conv4_3.weight"),
    (r"extras\.(\d+)\.(weight|bias)", lambda m: f"neck.extras.{int(m[1]) // 2}.{int(m[1]) % 2}.0.{m[2]}"),
    (r"loc\.(\d)\.(weight|bias)", r"head.box.\1.\2"),
    (r"conf\.(\d)\.(weight|bias)", r"head.cls.\1.\2"),  # per prior: 21 channels, background first, as zoo's
])


def _tcb_lateral(m) -> str:
    """tcb0: per level conv, ReLU, conv (indices 3L, 3L+1, 3L+2) -> neck.lateral.L.{0,1}."""
    level, position = divmod(int(m[1]), 3)
    if position == 1:
        raise KeyError(m[0])
    return f"neck.lateral.{level}.{position // 2}.0.{m[2]}"


def _tcb_fuse(m) -> str:
    """tcb2: per level ReLU, conv, ReLU -> neck.fuse.L (ReLU, conv block)."""
    level, position = divmod(int(m[1]), 3)
    if position != 1:
        raise KeyError(m[0])
    return f"neck.fuse.{level}.1.0.{m[2]}"


REFINEDET_KEYS = KeyMap([
    *_VGG,
    (r"conv4_3_L2Norm\.weight", "backbone.norms.conv4_3.weight"),
    (r"conv5_3_L2Norm\.weight", "backbone.norms.conv5_3.weight"),
    (r"extras\.([01])\.(weight|bias)", r"extras.extras.0.\1.0.\2"),
    (r"arm_loc\.(\d)\.(weight|bias)", r"arm.box.\1.\2"),
    (r"arm_conf\.(\d)\.(weight|bias)", r"arm.cls.\1.\2"),
    (r"odm_loc\.(\d)\.(weight|bias)", r"odm.box.\1.\2"),
    (r"odm_conf\.(\d)\.(weight|bias)", r"odm.cls.\1.\2"),
    (r"tcb0\.(\d+)\.(weight|bias)", _tcb_lateral),
    (r"tcb1\.(\d)\.(weight|bias)", r"neck.upsample.\1.\2"),
    (r"tcb2\.(\d+)\.(weight|bias)", _tcb_fuse),
])

_INPUT = ("++model.input_mean=[123.0, 117.0, 104.0]", "++model.input_std=[1.0, 1.0, 1.0]")
_CHECKED = ("key map and shapes checked against a manifest of the state dict written from the port's code "
            "(tests/models/import_manifests/ports); outputs not compared here")

register(ImportSpec(
    source="ssd.pytorch", model="ssd300", base="ssd300", data="voc07", classes=tuple(VOC_CLASSES),
    overrides=(*_INPUT, "model.priors.clip=centre_size", "model.test.topk_per_class=200",
               "model.test.max_detections=4000"),
    read=read_torch_state, convert=lambda state, where: SSD_KEYS.rename(state, where),
    published="ssd300_mAP_77.43_v2.pth (amdegroot/ssd.pytorch): VOC2007 test mAP 77.43",
    checked=_CHECKED,
    notes=("the port keeps every class's 200 best after NMS, with no cap per image (max_detections 4000 here)",),
))

for _size in (320, 512):
    register(ImportSpec(
        source="refinedet.pytorch", model=f"refinedet{_size}", base=f"refinedet{_size}", data="voc07",
        classes=tuple(VOC_CLASSES),
        overrides=(*_INPUT, "model.priors.ratios=[1.0, 0.5, 2.0]", "model.priors.clip=centre_size",
                   "model.test.max_detections=20000"),
        read=read_torch_state, convert=lambda state, where: REFINEDET_KEYS.rename(state, where),
        published=f"RefineDet{_size}_VOC_final.pth, as luuuyi/RefineDet.PyTorch's training script names its weights; "
                  f"the repository publishes none (its README: VOC2007 test mAP {'79.81' if _size == 320 else '80.50'} "
                  "for the weights it trained)",
        checked=_CHECKED,
        notes=("the port's anchors per cell are square, wide, tall: ratios [1, 0.5, 2] keep its conv channels in order",),
    ))
