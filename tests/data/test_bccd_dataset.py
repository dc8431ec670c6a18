"""The real BCCD data set (VOC layout, read-only); skipped where it is not installed."""
from __future__ import annotations

import re
import warnings

from zoo.data import DataWarning, VOCDataset

CLASSES = ["RBC", "WBC", "Platelets"]


def load(root, split: str) -> tuple[VOCDataset, list[str]]:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ds = VOCDataset(str(root), split, CLASSES)
    return ds, [str(w.message) for w in record if issubclass(w.category, DataWarning)]


def dropped(messages: list[str]) -> int:
    return sum(int(m) for text in messages for m in re.findall(r"dropped (\d+) boxes", text))


def test_split_sizes_and_classes(bccd_root):
    for split, size in {"trainval": 292, "test": 72}.items():
        ds, _ = load(bccd_root, split)
        assert len(ds) == size and ds.class_names == CLASSES


def test_exactly_two_zero_area_boxes_over_all_splits(bccd_root):
    messages = [m for split in ("train", "val", "test") for m in load(bccd_root, split)[1]]
    assert dropped(messages) == 2
    assert any("BloodImage_00338.xml" in m for m in messages) and any("BloodImage_00343.xml" in m for m in messages)
    _, trainval = load(bccd_root, "trainval")
    assert len(trainval) == 1 and dropped(trainval) == 2


def test_a_sample_loads(bccd_root):
    sample = load(bccd_root, "test")[0][0]
    assert sample["image"].shape == (480, 640, 3) and len(sample["boxes"]) > 0
    assert set(sample["labels"].tolist()) <= {0, 1, 2}
