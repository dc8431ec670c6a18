"""COCO JSON data sets and the VOC -> COCO conversion."""
from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from zoo.data import COCODataset, DataError, DataWarning, VOCDataset, voc_to_coco


def write_coco(tmp_path: Path, data: dict, images=("a.jpg", "b.jpg", "c.jpg")) -> tuple[str, str]:
    image_dir = tmp_path / "images"
    image_dir.mkdir(exist_ok=True)
    for name in images:
        cv2.imwrite(str(image_dir / name), np.full((40, 50, 3), 90, np.uint8))
    ann_file = tmp_path / "instances.json"
    ann_file.write_text(json.dumps(data))
    return str(ann_file), str(image_dir)


def tiny() -> dict:
    """Category ids 7 and 3 (unordered, not contiguous); a crowd box, a zero-area box and a negative image."""
    return {
        "images": [{"id": 20, "file_name": "b.jpg", "height": 40, "width": 50},
                   {"id": 10, "file_name": "a.jpg", "height": 40, "width": 50},
                   {"id": 30, "file_name": "c.jpg", "height": 40, "width": 50}],
        "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 7, "bbox": [1, 2, 10, 20], "iscrowd": 0, "area": 123.5},
            {"id": 2, "image_id": 10, "category_id": 3, "bbox": [5, 5, 60, 10], "iscrowd": 1},
            {"id": 3, "image_id": 20, "category_id": 3, "bbox": [5, 5, 0, 10], "iscrowd": 0},
        ],
    }


def test_reads_boxes_as_xyxy_with_labels_in_category_id_order(tmp_path):
    with pytest.warns(DataWarning, match=r"dropped 1 boxes .*\(b\.jpg\)"):
        ds = COCODataset(*write_coco(tmp_path, tiny()))
    assert ds.class_names == ["cat", "dog"] and ds.image_ids == [10, 20, 30]
    assert ds.label_to_cat_id == {0: 3, 1: 7}
    ann = ds.get_annotation(0)
    np.testing.assert_array_equal(ann["boxes"], [[1, 2, 11, 22], [5, 5, 50, 15]])  # the crowd box is clipped
    np.testing.assert_array_equal(ann["labels"], [1, 0])
    np.testing.assert_array_equal(ann["ignore"], [False, True])  # iscrowd -> ignore
    np.testing.assert_array_equal(ann["area"], [123.5, 450])  # the file's (mask) area; the box's when absent
    assert ds[1]["boxes"].shape == (0, 4) and ds[2]["labels"].shape == (0,)  # negatives stay valid
    assert ds[0]["image"].shape == (40, 50, 3)


def test_class_names_from_config_set_the_label_order(tmp_path):
    with pytest.warns(DataWarning):
        ds = COCODataset(*write_coco(tmp_path, tiny()), class_names=["dog", "cat"])
    np.testing.assert_array_equal(ds.get_annotation(0)["labels"], [0, 1])


def test_unknown_class_names_file_class_and_known_classes(tmp_path):
    with pytest.raises(DataError, match=r"instances\.json: image a\.jpg: unknown class 'cat'; known classes: dog"):
        COCODataset(*write_coco(tmp_path, tiny()), class_names=["dog"])
    data = tiny()
    data["annotations"][0]["category_id"] = "7"  # the id as text: no category of the file
    with pytest.raises(DataError, match=r"annotation 1 of image a\.jpg has category_id '7', not one of the file's "
                                        r"category ids \[3, 7\]"):
        COCODataset(*write_coco(tmp_path, data))


def test_split_placeholder_and_root(tmp_path):
    ann_file, image_dir = write_coco(tmp_path, tiny())
    Path(ann_file).rename(tmp_path / "instances_val.json")
    with pytest.warns(DataWarning, match=r"coco\[val\]"):
        ds = COCODataset("instances_{split}.json", "images", split="val", root=str(tmp_path))
    assert len(ds) == 3


@pytest.mark.parametrize("text, problem", [
    ('{"images": [', "malformed JSON"),
    ('{"annotations": []}', r"missing key\(s\) \['images', 'categories'\]"),
    ('{"images": [{"id": 1}], "categories": [], "annotations": []}', "lacks file_name/height/width"),
])
def test_malformed_json_names_the_file_and_problem(tmp_path, text, problem):
    ann_file, image_dir = write_coco(tmp_path, {})
    Path(ann_file).write_text(text)
    with pytest.raises(DataError, match=rf"instances\.json: .*{problem}"):
        COCODataset(ann_file, image_dir)


def test_bad_bbox_names_the_annotation(tmp_path):
    data = tiny()
    data["annotations"][0]["bbox"] = [1, 2, 3]
    with pytest.raises(DataError, match=r"annotation 1 of image a\.jpg has bbox \[1, 2, 3\]"):
        COCODataset(*write_coco(tmp_path, data))


def test_missing_image_is_skipped_and_counted(tmp_path):
    data = tiny()
    del data["annotations"][2]  # the zero-area box: its warning is not this test's subject
    ann_file, image_dir = write_coco(tmp_path, data, images=("a.jpg", "c.jpg"))
    with pytest.raises(DataError, match="b.jpg"):
        COCODataset(ann_file, image_dir)
    with pytest.warns(DataWarning, match="skipped 1 images"):
        ds = COCODataset(ann_file, image_dir, skip_bad=True)
    assert ds.image_ids == [10, 30]


def test_voc_to_coco_round_trip(small_voc, voc_classes, tmp_path):
    voc = VOCDataset(str(small_voc), "trainval", voc_classes)
    out = tmp_path / "out" / "trainval.json"
    path = Path(__file__).parents[2] / "scripts" / "voc2coco.py"
    spec = importlib.util.spec_from_file_location("voc2coco_script", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main(["--root", str(small_voc), "--split", "trainval", "--classes", *voc_classes, "--out", str(out)])
    coco = COCODataset(str(out), str(small_voc / "JPEGImages"), class_names=voc_classes)
    assert len(coco) == len(voc) and coco.class_names == voc.class_names
    for i in range(len(voc)):
        a, b = voc.get_annotation(i), coco.get_annotation(i)
        np.testing.assert_allclose(b["boxes"], a["boxes"])
        np.testing.assert_array_equal(b["labels"], a["labels"])
        np.testing.assert_array_equal(b["ignore"], a["ignore"])  # difficult -> iscrowd -> ignore
        assert coco.file(i) == voc.file(i)
    assert voc_to_coco(str(small_voc), "trainval", voc_classes)["categories"][0] == dict(id=1, name="cat",
                                                                                          supercategory="none")



def test_coco_data_config_builds_its_splits_from_a_coco_folder(tmp_path, compose_cfg):
    """data=coco with data.root at a folder laid out as COCO 2017 ships (annotations/, train2017/, val2017/)."""
    from zoo.config.run import RunConfig
    from zoo.engine.loaders import build_split

    (tmp_path / "annotations").mkdir()
    for split in ("train2017", "val2017"):
        (tmp_path / split).mkdir()
        for name in ("a.jpg", "b.jpg", "c.jpg"):
            cv2.imwrite(str(tmp_path / split / name), np.full((40, 50, 3), 90, np.uint8))
        (tmp_path / "annotations" / f"instances_{split}.json").write_text(json.dumps(tiny()))
    cfg = compose_cfg("data=coco", f"data.root={tmp_path}", "data.num_workers=0")
    for split, own in (("train", "train2017"), ("val", "val2017")):
        with pytest.warns(DataWarning, match="dropped 1 boxes"):
            loader, _ = build_split(RunConfig.from_composed(cfg), split, batch_size=2)
        assert loader.dataset.name == f"coco[{own}]" and len(loader.dataset) == 3


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["images"].append({"id": 10, "file_name": "c.jpg", "height": 40, "width": 50}),
     r"image id 10 is used by both 'a.jpg' and 'c.jpg'"),
    (lambda d: d["images"][0].update(id="b"), r"image ids mix types"),
    (lambda d: d["categories"].append({"id": 9}), r"category \{'id': 9\} needs an 'id' and a 'name'"),
    (lambda d: d["annotations"].append({"id": 9, "image_id": 99, "category_id": 7, "bbox": [1, 1, 2, 2]}),
     r"1 image id\(s\) have annotations but no image entry, e.g. \[99\]"),
    (lambda d: d["categories"].append({"id": 7, "name": "horse"}), r"category id 7 is used by both 'dog' and 'horse'"),
    (lambda d: d["categories"].append({"id": 8, "name": "dog"}), r"category name\(s\) \['dog'\] are used by more than one"),
    (lambda d: d.pop("annotations"), r"has no 'annotations' list"),
])
def test_what_the_coco_index_would_hide_fails_naming_the_file(tmp_path, edit, message):
    data = tiny()
    edit(data)
    with pytest.raises(DataError, match=r"instances\.json: " + message):
        COCODataset(*write_coco(tmp_path, data))


@pytest.mark.parametrize("key", ["images", "categories", "annotations"])
@pytest.mark.parametrize("value, seen", [(None, "null"), ({"id": 1}, "an object"), ("a.jpg", "a string"),
                                         (3, "a number")])
def test_a_top_level_key_that_is_not_a_list_fails_naming_the_file_and_the_key(tmp_path, key, value, seen):
    data = tiny()
    data[key] = value
    with pytest.raises(DataError) as err:
        COCODataset(*write_coco(tmp_path, data))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(str(tmp_path / "instances.json") + f": '{key}' is {seen}, expected a list")


def test_a_class_no_annotation_uses_is_named_with_the_counts_per_class(tmp_path):
    data = tiny()
    data["categories"].append({"id": 9, "name": "horse"})
    for data, class_names, unused in ((data, None, "'horse'"), (tiny(), ["dog", "bird", "cat", "cow"], "'bird', 'cow'")):
        with pytest.warns(DataWarning) as record:
            ds = COCODataset(*write_coco(tmp_path, data), class_names=class_names)
        counts = ", ".join(f"{name} {1 if name in ('cat', 'dog') else 0}" for name in ds.class_names)
        assert [str(w.message) for w in record if "no object of class" in str(w.message)] == [
            f"coco[instances.json]: no object of class(es) {unused} in this split (objects per class: {counts})"]


def test_the_synthetic_data_never_warns_of_unused_classes():
    from zoo.data import SyntheticShapes

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for split, size in (("train", 200), ("val", 2)):
            ds = SyntheticShapes(num_images=size, image_size=64, split=split)
            ds[0]
