"""VOC split -> COCO detection JSON (the logic behind scripts/voc2coco.py).

Boxes are written as the voc data set reads them (0-based, clipped, degenerate ones dropped), so the coco
data set on the result yields the same boxes. ``difficult`` becomes ``iscrowd=1``: it is COCO's only
per-box "do not score" flag, and the coco data set maps it back to ignore=True. Note that COCOeval treats
crowd boxes slightly differently from VOC's difficult (it matches many detections to them).
"""
from __future__ import annotations

import json
import os

from zoo.data.voc import VOCDataset


def voc_to_coco(root: str, split: str, class_names: list[str]) -> dict:
    """COCO dict with image ``file_name`` relative to ``<root>/JPEGImages`` and category ids 1..C in
    ``class_names`` order."""
    dataset = VOCDataset(root, split, class_names)
    images, annotations = [], []
    for index in range(len(dataset)):
        ann = dataset.get_annotation(index)
        images.append(dict(id=index + 1, file_name=os.path.basename(dataset.file(index)),
                           height=ann["height"], width=ann["width"]))
        targets = zip(ann["boxes"].tolist(), ann["labels"].tolist(), ann["ignore"].tolist())
        for (x1, y1, x2, y2), label, ignore in targets:
            annotations.append(dict(id=len(annotations) + 1, image_id=index + 1, category_id=label + 1,
                                    bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1), iscrowd=int(ignore)))
    categories = [dict(id=i + 1, name=name, supercategory="none") for i, name in enumerate(class_names)]
    return dict(images=images, annotations=annotations, categories=categories)


def write_coco(data: dict, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f)
