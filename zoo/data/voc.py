"""Pascal VOC layout: ``Annotations/*.xml``, ``ImageSets/Main/<split>.txt``, ``JPEGImages/*.jpg``."""
from __future__ import annotations

import math
import os
import warnings
from collections import Counter
import xml.etree.ElementTree as ET

from zoo.data.annotations import ImageRecord, dropped_boxes_tally, make_record
from zoo.data.base import RecordDataset, require_path
from zoo.data.errors import DataError, DataWarning, Tally
from zoo.registry import DATASETS
from zoo.structures.class_names import VOC_CLASSES


def read_split(root: str, split: str) -> list[str]:
    path = os.path.join(root, "ImageSets", "Main", f"{split}.txt")
    if not os.path.isfile(path):
        folder = os.path.dirname(path)
        known = sorted(f[:-4] for f in os.listdir(folder) if f.endswith(".txt")) if os.path.isdir(folder) else []
        raise DataError(f"split file {path} does not exist; splits found there: {known}")
    with open(path) as f:
        listed = [line.split()[0] for line in f if line.strip()]
    if not listed:
        raise DataError(f"split file {path} lists no images")
    ids = list(dict.fromkeys(listed))  # an image listed twice would be trained on, or scored, twice
    if len(ids) < len(listed):
        repeated = sorted(i for i, n in Counter(listed).items() if n > 1)
        warnings.warn(f"{path}: {len(listed) - len(ids)} repeated line(s) dropped, each image kept once "
                      f"({', '.join(repeated[:5])}{' and more' if len(repeated) > 5 else ''})", DataWarning, stacklevel=2)
    return ids


def _number(element: ET.Element, tag: str, path: str) -> float:
    text = element.findtext(tag)
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise DataError(f"{path}: <{tag}> is missing or not a number (got {text!r})") from None
    if not math.isfinite(value):  # float() takes 'nan', 'inf' and '1e999': a box or a size must be a finite number
        raise DataError(f"{path}: <{tag}> is {text.strip()!r}, not a finite number")
    return value


DIFFICULT_MODES = ("ignore", "object", "drop")


def parse_voc_xml(path: str, class_names: list[str], difficult: str = "ignore") -> tuple[int, int, list, list, list]:
    """(height, width, boxes, labels, ignore) of one annotation file; boxes xyxy in continuous pixel coordinates.
    ``difficult`` objects are flagged ignore ('ignore'), kept as ordinary objects ('object') or left out ('drop')."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise DataError(f"{path}: malformed XML ({err})") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read annotation file ({err.strerror})") from None
    size = root.find("size")
    if size is None:
        raise DataError(f"{path}: no <size> element")
    height, width = int(_number(size, "height", path)), int(_number(size, "width", path))
    boxes, labels, ignore = [], [], []
    for obj in root.findall("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in class_names:
            raise DataError(f"{path}: unknown class '{name}'; known classes: {', '.join(class_names)}")
        hard = bool(int(_number(obj, "difficult", path))) if obj.find("difficult") is not None else False
        if hard and difficult == "drop":
            continue
        box = obj.find("bndbox")
        if box is None:
            raise DataError(f"{path}: object '{name}' has no <bndbox>")
        # VOC names the first and last pixel, counted from 1: pixel x covers [x - 1, x] in continuous
        # coordinates, so the box spans [xmin - 1, xmax] (xmax - xmin + 1 wide, as the devkit measures).
        # A box whose last pixel is not past its first (a point: BCCD has two) stays empty and is dropped.
        x1, y1, x2, y2 = (_number(box, tag, path) for tag in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append([x1 - 1, y1 - 1, x2, y2] if x2 > x1 and y2 > y1 else [x1, y1, x1, y1])
        labels.append(class_names.index(name))
        ignore.append(hard and difficult == "ignore")
    return height, width, boxes, labels, ignore


def read_voc(root: str, split: str, class_names: list[str], difficult: str, dropped: Tally) -> list[ImageRecord]:
    records = []
    for image_id in read_split(root, split):
        xml = os.path.join(root, "Annotations", f"{image_id}.xml")
        height, width, boxes, labels, ignore = parse_voc_xml(xml, class_names, difficult)
        image = os.path.join(root, "JPEGImages", f"{image_id}.jpg")
        records.append(make_record(image, os.path.basename(xml), height, width, boxes, labels, ignore, dropped))
    return records


@DATASETS.register("voc")
class VOCDataset(RecordDataset):
    """A VOC split; ``root`` may list several devkit folders (VOC2007 + VOC2012 trainval for "voc0712").

    ``difficult`` objects are kept with ignore=True by default: neither matched nor mined as background
    in training, not scored in evaluation. For a training split, ``difficult: object`` trains on them
    as on any object (SSD's and RefineDet's reference code) and ``difficult: drop`` leaves them out
    (py-faster-rcnn's). Malformed XML and unknown classes always fail: ``skip_bad`` skips images,
    never ground truth.
    """

    def __init__(self, root: str | list[str], split: str, class_names: list[str] = VOC_CLASSES,
                 difficult: str = "ignore", skip_bad: bool = False, transform=None):
        if difficult not in DIFFICULT_MODES:
            raise ValueError(f"voc: difficult must be one of {list(DIFFICULT_MODES)}, got {difficult!r}")
        name = f"voc[{split}]"
        class_names = list(class_names)
        dropped = dropped_boxes_tally()
        records = []
        for folder in [root] if isinstance(root, str) else list(root):
            records += read_voc(require_path(folder, "VOC root"), split, class_names, difficult, dropped)
        dropped.warn(name)
        super().__init__(name, records, class_names, transform, skip_bad)
