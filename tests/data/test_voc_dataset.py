"""VOC parsing and every kind of bad input, on tiny VOC trees written by the tests."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch

from zoo.data import DataError, DataWarning, VOCDataset, ssd_train


def data_warnings(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, DataWarning)]


def test_parses_boxes_labels_and_difficult_as_ignore(small_voc, voc_classes):
    ds = VOCDataset(str(small_voc), "trainval", voc_classes)
    assert len(ds) == 3 and ds.class_names == voc_classes
    ann = ds.get_annotation(0)
    # VOC names first and last pixels from 1: (11, 6)-(30, 25) covers [10, 30] x [5, 25], 20 px wide as the devkit says
    np.testing.assert_array_equal(ann["boxes"], [[10, 5, 30, 25], [20, 10, 60, 40]])
    np.testing.assert_array_equal(ann["labels"], [0, 1])
    np.testing.assert_array_equal(ann["ignore"], [False, True])
    assert (ann["height"], ann["width"], ann["image_id"]) == (48, 64, 0)
    sample = ds[0]
    assert sample["image"].shape == (48, 64, 3) and sample["image"].dtype == np.uint8
    assert sample["file"].endswith("a.jpg") and sample["orig_size"] == (48, 64) and sample["scale"] == (1.0, 1.0)


def test_difficult_objects_are_ignored_kept_as_objects_or_dropped(small_voc, voc_classes):
    drop = VOCDataset(str(small_voc), "trainval", voc_classes, difficult="drop").get_annotation(0)
    np.testing.assert_array_equal(drop["labels"], [0])
    keep = VOCDataset(str(small_voc), "trainval", voc_classes, difficult="object").get_annotation(0)
    np.testing.assert_array_equal(keep["labels"], [0, 1])
    np.testing.assert_array_equal(keep["ignore"], [False, False])
    with pytest.raises(ValueError, match=r"difficult must be one of \['ignore', 'object', 'drop'\], got 'keep'"):
        VOCDataset(str(small_voc), "trainval", voc_classes, difficult="keep")


def test_image_without_objects_is_a_valid_negative(small_voc, voc_classes):
    for transform in (None, ssd_train(size=32)):
        sample = VOCDataset(str(small_voc), "trainval", voc_classes, transform=transform)[(2, 0)]
        assert sample["boxes"].shape == (0, 4) and sample["boxes"].dtype == np.float32
        assert sample["labels"].shape == (0,) and sample["labels"].dtype == np.int64
        assert sample["ignore"].shape == (0,) and sample["ignore"].dtype == np.bool_


def test_degenerate_boxes_are_dropped_with_one_warning(tmp_path, voc_classes, write_voc):
    root = write_voc(tmp_path, {
        "x1": dict(objects=[("cat", (5, 5, 5, 5)), ("dog", (9, 9, 7, 20)), ("cat", (1, 1, 9, 9))]),
        "x2": dict(objects=[("bird", (3, 4, 3, 30))]),
        "x3": dict(objects=[("bird", (3, 4, 13, 30)), ("dog", (3, 4, 13, 30))]),  # every class kept: no other warning
    })
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ds = VOCDataset(str(root), "trainval", voc_classes)
    messages = data_warnings(record)
    assert len(messages) == 1
    assert "voc[trainval]: dropped 3 boxes" in messages[0] and "x1.xml" in messages[0] and "x2.xml" in messages[0]
    assert [len(ds.get_annotation(i)["boxes"]) for i in range(3)] == [1, 0, 2]


def test_boxes_past_the_border_are_clipped_and_outside_ones_dropped(tmp_path, voc_classes, write_voc):
    root = write_voc(tmp_path, {"e": dict(size=(48, 64), objects=[("cat", (-5, 40, 80, 60)), ("dog", (70, 1, 90, 9))])})
    with pytest.warns(DataWarning, match="dropped 1 boxes"):
        ann = VOCDataset(str(root), "trainval", voc_classes).get_annotation(0)
    np.testing.assert_array_equal(ann["boxes"], [[0, 39, 64, 48]])


def test_unknown_class_names_file_class_and_known_classes(tmp_path, voc_classes, write_voc):
    root = write_voc(tmp_path, {"u": dict(objects=[("zebra", (1, 1, 5, 5))])})
    with pytest.raises(DataError) as err:
        VOCDataset(str(root), "trainval", voc_classes)
    message = str(err.value)
    assert "u.xml" in message and "'zebra'" in message and "cat, dog, bird" in message


def test_malformed_xml_names_the_file(tmp_path, voc_classes, write_voc):
    root = write_voc(tmp_path, {"m": dict(xml="<annotation><size><width>4</width>")})
    with pytest.raises(DataError, match=r"m\.xml: malformed XML"):
        VOCDataset(str(root), "trainval", voc_classes)


def test_non_numeric_coordinate_names_the_file(tmp_path, voc_classes, write_voc):
    root = write_voc(tmp_path, {"n": dict(objects=[("cat", ("one", 1, 5, 5))])})
    with pytest.raises(DataError, match=r"n\.xml: <xmin> is missing or not a number"):
        VOCDataset(str(root), "trainval", voc_classes)


def test_missing_image_fails_or_is_skipped_and_counted(tmp_path, voc_classes, write_voc):
    images = {"ok": dict(objects=[("cat", (1, 1, 9, 9))]), "gone1": dict(image="missing"),
              "gone2": dict(image="missing")}
    root = write_voc(tmp_path, images)
    with pytest.raises(DataError, match="gone1.jpg"):
        VOCDataset(str(root), "trainval", voc_classes)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ds = VOCDataset(str(root), "trainval", ["cat"], skip_bad=True)  # the classes the kept image has
    messages = data_warnings(record)
    assert len(ds) == 1 and ds.file(0).endswith("ok.jpg")
    assert len(messages) == 1 and "skipped 2 images" in messages[0] and "gone1.jpg" in messages[0]


def test_corrupt_image_fails_naming_it_or_falls_back_with_skip_bad(tmp_path, voc_classes, write_voc):
    root = write_voc(tmp_path, {"bad": dict(image="corrupt"), "good": dict(objects=[("dog", (1, 1, 9, 9))])})
    with pytest.raises(DataError, match="bad.jpg"):
        VOCDataset(str(root), "trainval", voc_classes)[0]
    ds = VOCDataset(str(root), "trainval", voc_classes, skip_bad=True)
    with pytest.warns(DataWarning, match="bad.jpg"):
        sample = ds[0]
    assert sample["image_id"] == 1 and sample["file"].endswith("good.jpg")
    ds.stand_in = False  # an evaluation split: the stand-in would be scored twice, so the image is left out
    with pytest.warns(DataWarning, match="bad.jpg.*left out"):
        assert ds[0] is None


def test_image_that_disagrees_with_its_annotation_size_is_bad(tmp_path, voc_classes, write_voc):
    root = write_voc(tmp_path, {"s": dict(size=(48, 64), image_size=(64, 48))})
    with pytest.raises(DataError, match=r"s\.jpg: image is 48x64 but its annotation says 64x48"):
        VOCDataset(str(root), "trainval", voc_classes)[0]


def test_missing_relative_root_says_path_cwd_and_override(tmp_path, monkeypatch, voc_classes):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as err:
        VOCDataset("no/such/VOC2007", "trainval", voc_classes)
    message = str(err.value)
    assert "no/such/VOC2007" in message and os.getcwd() in message and "data.root=" in message


def test_missing_split_lists_the_splits_there(small_voc, voc_classes):
    with pytest.raises(DataError, match=r"test\.txt does not exist; splits found there: \['trainval'\]"):
        VOCDataset(str(small_voc), "test", voc_classes)


def test_an_empty_split_file_is_refused_and_a_repeated_line_kept_once(small_voc, voc_classes):
    split = small_voc / "ImageSets" / "Main" / "trainval.txt"
    ids = split.read_text().split()
    split.write_text("\n\n")
    with pytest.raises(DataError, match=r"trainval\.txt lists no images"):
        VOCDataset(str(small_voc), "trainval", voc_classes)
    split.write_text("\n".join([*ids, ids[0], ids[0]]) + "\n")
    with pytest.warns(DataWarning, match=rf"trainval\.txt: 2 repeated line\(s\) dropped, each image kept once \({ids[0]}\)"):
        ds = VOCDataset(str(small_voc), "trainval", voc_classes)
    assert len(ds) == len(ids)


def test_several_roots_are_concatenated(tmp_path, voc_classes, write_voc):
    first = write_voc(tmp_path / "2007", {"a": dict(objects=[("cat", (1, 1, 9, 9))])})
    second = write_voc(tmp_path / "2012", {"b": dict(), "c": dict()})
    ds = VOCDataset([str(first), str(second)], "trainval", voc_classes)
    assert len(ds) == 3 and ds.file(2).endswith(os.path.join("2012", "JPEGImages", "c.jpg"))


def test_an_unreadable_evaluation_image_is_left_out_of_the_metric_and_counted(tmp_path, voc_classes, write_voc):
    from zoo.data import Collate, build_loader
    from zoo.engine.inference import evaluate_model
    from zoo.evaluation.voc import VOCEvaluator

    root = write_voc(tmp_path, {"a": dict(objects=[("dog", (1, 1, 9, 9))]), "bad": dict(image="corrupt"),
                                "c": dict(objects=[("cat", (2, 2, 12, 12))])})
    ds = VOCDataset(str(root), "trainval", voc_classes, skip_bad=True)
    ds.stand_in = False  # as build_split sets it for val and test

    class Perfect(torch.nn.Module):  # finds every box of the two readable images
        def forward(self, images, image_sizes=None):
            return [{"boxes": t["boxes"], "scores": torch.ones(len(t["boxes"])), "labels": t["labels"]}
                    for t in targets.pop(0)]

    loader = build_loader(ds, 2, Collate([0, 0, 0], [1, 1, 1]))
    targets = [batch.targets for batch in loader]
    assert [len(b) for b in loader] == [1, 1] and [b.skipped for b in loader] == [1, 0]
    with pytest.warns(DataWarning, match=r"voc\[trainval\]: 1 unreadable image\(s\) left out of the evaluation"):
        results = evaluate_model(Perfect(), loader, [VOCEvaluator(voc_classes)], torch.device("cpu"), progress=False)
    assert results["metrics"]["voc07_map50"] == pytest.approx(1.0)  # the bad image's ground truth is not missed


def test_a_truncated_jpeg_is_a_bad_image_not_grey_rows(tmp_path, voc_classes, write_voc):
    root = write_voc(tmp_path, {"cut": dict(objects=[("dog", (1, 1, 9, 9))])})
    image = root / "JPEGImages" / "cut.jpg"
    image.write_bytes(image.read_bytes()[:-40])  # OpenCV alone would decode this, greying what is missing
    with pytest.raises(DataError, match="cut.jpg: truncated JPEG"):
        VOCDataset(str(root), "trainval", voc_classes)[0]


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "1e999"])
@pytest.mark.parametrize("tag", ["xmin", "ymax"])
def test_a_coordinate_that_is_not_finite_names_the_file_and_the_tag(tmp_path, voc_classes, write_voc, tag, text):
    box = {"xmin": 1, "ymin": 1, "xmax": 5, "ymax": 5, tag: text}
    root = write_voc(tmp_path, {"f": dict(objects=[("cat", tuple(box.values()))])})
    with pytest.raises(DataError, match=rf"f\.xml: <{tag}> is '{text}', not a finite number"):
        VOCDataset(str(root), "trainval", voc_classes)


@pytest.mark.parametrize("text", ["nan", "inf"])
def test_an_image_size_that_is_not_finite_names_the_file_and_the_tag(tmp_path, voc_classes, write_voc, text):
    root = write_voc(tmp_path, {"s": dict(xml=f"<annotation><size><width>{text}</width><height>4</height></size>"
                                              "</annotation>")})
    with pytest.raises(DataError, match=rf"s\.xml: <width> is '{text}', not a finite number"):
        VOCDataset(str(root), "trainval", voc_classes)


def test_a_class_no_object_uses_is_named_in_one_warning_with_the_counts_per_class(tmp_path, voc_classes, write_voc):
    root = write_voc(tmp_path, {"a": dict(objects=[("cat", (1, 1, 9, 9)), ("cat", (2, 2, 9, 9))]),
                                "b": dict(objects=[("dog", (1, 1, 9, 9), True)]), "c": dict()})
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ds = VOCDataset(str(root), "trainval", voc_classes)
    assert data_warnings(record) == ["voc[trainval]: no object of class(es) 'bird' in this split (objects per class: "
                                     "cat 2, dog 1, bird 0)"]
    assert len(ds) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        VOCDataset(str(root), "trainval", ["cat", "dog"])  # every class used: nothing to say


def test_the_unused_class_count_is_over_the_images_kept(tmp_path, voc_classes, write_voc):
    root = write_voc(tmp_path, {"a": dict(objects=[("cat", (1, 1, 9, 9))]), "b": dict(objects=[("dog", (1, 1, 9, 9))]),
                                "gone": dict(image="missing", objects=[("bird", (1, 1, 9, 9))])})
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        VOCDataset(str(root), "trainval", voc_classes, skip_bad=True)
    assert [m for m in data_warnings(record) if "no object of class" in m] == [
        "voc[trainval]: no object of class(es) 'bird' in this split (objects per class: cat 1, dog 1, bird 0)"]
