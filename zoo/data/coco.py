"""COCO detection JSON, read through pycocotools."""
from __future__ import annotations

import contextlib
import io
import json
import os
from collections import Counter

from pycocotools.coco import COCO

from zoo.data.annotations import ImageRecord, dropped_boxes_tally, make_record
from zoo.data.base import RecordDataset, require_path
from zoo.data.errors import DataError, Tally
from zoo.registry import DATASETS


def load_coco(path: str) -> COCO:
    """A pycocotools index of ``path``; every way the file can be wrong becomes a DataError naming it."""
    require_path(path, "COCO annotation file")
    try:
        with open(path) as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: malformed JSON ({err})") from None
    missing = [k for k in ("images", "categories") if not isinstance(data, dict) or k not in data]
    if missing:
        raise DataError(f"{path}: not a COCO detection file, missing key(s) {missing}")
    if "annotations" not in data:  # an image list alone (test-dev): nothing to train on or score against
        raise DataError(f"{path}: has no 'annotations' list, so it can be neither trained on nor scored (an image "
                        "list such as test-dev); an annotated split with no objects has 'annotations': []")
    for key in ("images", "categories", "annotations"):
        if not isinstance(data[key], list):
            raise DataError(f"{path}: '{key}' is {_json_kind(data[key])}, expected a list of {key[:-1]} entries "
                            f"(an empty one is [])")
    _check_ids(data, path)
    coco = COCO()
    coco.dataset = data
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress lines
            coco.createIndex()
    except (KeyError, TypeError) as err:
        raise DataError(f"{path}: malformed COCO entry ({err!r})") from None
    return coco


def _json_kind(value) -> str:
    """What a JSON value is, in JSON's words: null, an object, a string, ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    kinds = {dict: "an object", str: "a string", int: "a number", float: "a number"}
    return kinds.get(type(value), type(value).__name__)


def _check_ids(data: dict, path: str) -> None:
    """What pycocotools' index would hide: a repeated image id (the later entry silently replaces the
    earlier one), ids of mixed types (they cannot be ordered), categories without a name or sharing an id
    or a name (one category's boxes would be labelled as the other's), and
    annotations of images the file does not list (they would be left out uncounted)."""
    ids = [image.get("id") if isinstance(image, dict) else None for image in data["images"]]
    if None in ids:
        raise DataError(f"{path}: an image entry has no 'id'")
    if len({type(i) for i in ids}) > 1:
        raise DataError(f"{path}: image ids mix types ({sorted({type(i).__name__ for i in ids})}); use one type")
    seen: dict = {}
    for image in data["images"]:
        if image["id"] in seen:
            raise DataError(f"{path}: image id {image['id']!r} is used by both {seen[image['id']]!r} and "
                            f"{image.get('file_name')!r}")
        seen[image["id"]] = image.get("file_name")
    named: dict = {}
    for cat in data["categories"]:
        if not isinstance(cat, dict) or "id" not in cat or "name" not in cat:
            raise DataError(f"{path}: category {cat!r} needs an 'id' and a 'name'")
        if cat["id"] in named:  # the later entry would take the earlier one's boxes
            raise DataError(f"{path}: category id {cat['id']!r} is used by both {named[cat['id']]!r} and "
                            f"{cat['name']!r}")
        named[cat["id"]] = cat["name"]
    if len(set(named.values())) < len(named):
        twice = sorted(n for n, count in Counter(named.values()).items() if count > 1)
        raise DataError(f"{path}: category name(s) {twice} are used by more than one category id")
    orphans = sorted({a.get("image_id") for a in data.get("annotations", []) if isinstance(a, dict)} - set(seen), key=str)
    if orphans:
        raise DataError(f"{path}: {len(orphans)} image id(s) have annotations but no image entry, "
                        f"e.g. {orphans[:5]}")


def category_labels(coco: COCO, class_names: list[str] | None) -> tuple[list[str], dict[int, int]]:
    """Class names and the category id -> label map: contiguous labels in category-id order by default."""
    cats = sorted(coco.dataset["categories"], key=lambda c: c["id"])
    if class_names is None:
        return [c["name"] for c in cats], {c["id"]: i for i, c in enumerate(cats)}
    class_names = list(class_names)
    return class_names, {c["id"]: class_names.index(c["name"]) for c in cats if c["name"] in class_names}


def _xyxy(ann: dict, where: str) -> list[float]:
    try:
        x, y, w, h = (float(v) for v in ann["bbox"])
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{where} has bbox {ann.get('bbox')!r}, not [x, y, width, height]") from None
    return [x, y, x + w, y + h]


def read_coco(coco: COCO, path: str, image_dir: str, class_names: list[str], cat_to_label: dict[int, int],
              dropped: Tally) -> list[ImageRecord]:
    records = []
    for image_id in sorted(coco.imgs):
        info = coco.imgs[image_id]
        try:
            file, height, width = info["file_name"], int(info["height"]), int(info["width"])
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{path}: image entry {image_id} lacks file_name/height/width ({err!r})") from None
        boxes, labels, ignore, area = [], [], [], []
        for ann in coco.imgToAnns.get(image_id, []):
            if ann.get("category_id") not in cat_to_label:
                cat_id = ann.get("category_id")
                if cat_id not in coco.cats:  # not a category of the file at all (a typo, or an id given as text)
                    raise DataError(f"{path}: annotation {ann.get('id')} of image {file} has category_id {cat_id!r}, "
                                    f"not one of the file's category ids {sorted(coco.cats, key=str)}")
                raise DataError(f"{path}: image {file}: unknown class '{coco.cats[cat_id]['name']}'; known classes: "
                                f"{', '.join(class_names)}")
            boxes.append(_xyxy(ann, f"{path}: annotation {ann.get('id')} of image {file}"))
            labels.append(cat_to_label[ann["category_id"]])
            ignore.append(bool(ann.get("iscrowd", 0)))
            area.append(float(ann.get("area", "nan")))  # COCO's size ranges use the mask's area
        records.append(make_record(os.path.join(image_dir, file), file, height, width, boxes, labels, ignore, dropped,
                                   ref=image_id, area=area))
    return records


@DATASETS.register("coco")
class COCODataset(RecordDataset):
    """COCO boxes with crowd regions as ignore=True. ``{split}`` in ``ann_file``/``image_dir`` is filled from
    ``split`` and relative paths are joined onto ``root``. ``image_ids[i]`` is the COCO id of index i and
    ``label_to_cat_id[label]`` the category id of a label, for writing results in COCO's ids."""

    def __init__(self, ann_file: str, image_dir: str, split: str = "", root: str = "",
                 class_names: list[str] | None = None, skip_bad: bool = False, transform=None):
        ann_file = os.path.join(root, ann_file.format(split=split))
        image_dir = require_path(os.path.join(root, image_dir.format(split=split)), "COCO image folder")
        name = f"coco[{split or os.path.basename(ann_file)}]"
        self.coco = load_coco(ann_file)
        class_names, cat_to_label = category_labels(self.coco, class_names)
        self.label_to_cat_id = {label: cat for cat, label in cat_to_label.items()}
        dropped = dropped_boxes_tally()
        records = read_coco(self.coco, ann_file, image_dir, class_names, cat_to_label, dropped)
        dropped.warn(name)
        super().__init__(name, records, class_names, transform, skip_bad)

    @property
    def image_ids(self) -> list[int]:
        return [record.ref for record in self.records]
