"""The COCO evaluator against a direct pycocotools run on JSON files written the usual way."""
import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from zoo.evaluation import COCOEvaluator
from zoo.evaluation.coco import STAT_KEYS


def direct_pycocotools(class_names, gts, preds, tmp_path):
    """COCOeval the textbook way: instances.json and results.json on disk, loadRes, evaluate."""
    images, annotations, results = [], [], []
    for g in gts:
        images.append({"id": g["image_id"], "height": g["height"], "width": g["width"]})
        for box, label, crowd in zip(g["boxes"].tolist(), g["labels"].tolist(), g["ignore"].tolist()):
            x1, y1, x2, y2 = box
            annotations.append({"id": len(annotations) + 1, "image_id": g["image_id"], "category_id": label + 1,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                                "iscrowd": int(crowd)})
    for p in preds:
        for box, score, label in zip(p["boxes"].tolist(), p["scores"].tolist(), p["labels"].tolist()):
            x1, y1, x2, y2 = box
            results.append({"image_id": p["image_id"], "category_id": label + 1,
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score})
    categories = [{"id": k + 1, "name": n} for k, n in enumerate(class_names)]
    (tmp_path / "gt.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                  "categories": categories}))
    (tmp_path / "res.json").write_text(json.dumps(results))
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(tmp_path / "gt.json"))
        coco_eval = COCOeval(coco_gt, coco_gt.loadRes(str(tmp_path / "res.json")), "bbox")
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return coco_eval


def evaluate(class_names, gts, preds, **kwargs):
    ev = COCOEvaluator(class_names, **kwargs)
    ev.process(gts, preds)
    return ev.evaluate()


def flat(results):
    return np.array([results[k] for k in STAT_KEYS])


def test_matches_direct_pycocotools(detection_set, tmp_path):
    names, gts, preds = detection_set
    assert any(g["ignore"].any() for g in gts)  # the set exercises crowd boxes
    direct = direct_pycocotools(names, gts, preds, tmp_path)
    ours = evaluate(names, gts, preds)
    expected = np.where(direct.stats[:12] < 0, np.nan, direct.stats[:12])  # -1 (undefined) is NaN here
    assert np.isfinite(expected).all()  # every size range occurs, so all twelve are compared
    np.testing.assert_allclose(flat(ours), expected, rtol=0, atol=1e-9)

    # Per-class AP from the same precision array (area all, 100 dets), averaged where defined.
    precision = direct.eval["precision"][:, :, :, 0, -1]
    for k, name in enumerate(names):
        p = precision[:, :, k]
        assert ours["per_class"][name]["ap"] == pytest.approx(p[p > -1].mean(), abs=1e-9)
        assert ours["per_class"][name]["ap50"] == pytest.approx(p[0][p[0] > -1].mean(), abs=1e-9)
    assert np.mean([v["ap"] for v in ours["per_class"].values()]) == pytest.approx(ours["coco_ap"], abs=1e-9)


def test_counts_per_class(detection_set):
    names, gts, preds = detection_set
    per_class = evaluate(names, gts, preds)["per_class"]
    for k, name in enumerate(names):
        assert per_class[name]["num_gt"] == sum(int(((g["labels"] == k) & ~g["ignore"]).sum()) for g in gts)
        assert per_class[name]["num_det"] == sum(int((p["labels"] == k).sum()) for p in preds)


def test_faster_coco_eval_backend_agrees(detection_set):
    names, gts, preds = detection_set
    reference = evaluate(names, gts, preds)
    fast = evaluate(names, gts, preds, backend="faster_coco_eval")
    np.testing.assert_allclose(flat(fast), flat(reference), rtol=0, atol=1e-4)
    for name in names:
        assert fast["per_class"][name]["ap"] == pytest.approx(reference["per_class"][name]["ap"], abs=1e-4)


@pytest.mark.parametrize("backend", ["pycocotools", "faster_coco_eval"])
def test_no_predictions_gives_zeros_with_a_warning(detection_set, backend):
    names, gts, _ = detection_set
    with pytest.warns(UserWarning, match="no predictions"):
        res = evaluate(names, gts, [], backend=backend)
    assert all(res[k] == 0.0 for k in STAT_KEYS)
    assert res["per_class"]["circle"]["ap"] == 0.0


def test_prediction_only_images_count_as_false_positives():
    box = np.array([[10.0, 10.0, 60.0, 60.0]])
    gts = [{"image_id": 1, "boxes": box, "labels": np.array([0]), "height": 100, "width": 100}]
    hit = {"image_id": 1, "boxes": box, "scores": np.array([0.5]), "labels": np.array([0])}
    stray = {"image_id": 2, "boxes": box, "scores": np.array([0.9]), "labels": np.array([0])}
    assert evaluate(["a"], gts, [hit])["coco_ap50"] == pytest.approx(1.0)
    with_stray = evaluate(["a"], gts, [hit, stray])  # the FP ranked first: precision 1/2 at every recall
    assert with_stray["coco_ap50"] == pytest.approx(0.5) and with_stray["coco_ap"] == pytest.approx(0.5)


def test_pycocotools_output_is_silenced(detection_set, capsys):
    names, gts, preds = detection_set
    evaluate(names, gts, preds)
    assert capsys.readouterr().out == ""


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="faster_coco_eval"):
        COCOEvaluator(["a"], backend="detectron")


@pytest.mark.parametrize("backend", ["pycocotools", "faster_coco_eval"])
def test_an_image_is_scored_on_its_100_best_detections_over_all_classes(backend):
    # 100 objects of each of two classes, each found exactly; the 'b' ones score lower. COCOeval's
    # own cap is per image and class, so without the per-image cut all 200 would count.
    xy = np.stack(np.meshgrid(np.arange(10) * 20.0, np.arange(10) * 20.0), -1).reshape(-1, 2)
    boxes = np.concatenate([xy, xy + 10], axis=1)
    gts = [{"image_id": 1, "boxes": np.concatenate([boxes, boxes + 200]), "labels": np.repeat([0, 1], 100),
            "height": 400, "width": 400}]
    preds = [{"image_id": 1, "boxes": gts[0]["boxes"], "scores": np.repeat([0.9, 0.5], 100),
              "labels": gts[0]["labels"]}]
    res = evaluate(["a", "b"], gts, preds, backend=backend)
    assert res["coco_ar100"] == pytest.approx(0.5) and res["per_class"]["b"]["ap"] == pytest.approx(0.0)
    assert res["per_class"]["a"]["ap"] == pytest.approx(1.0)
    assert (res["per_class"]["a"]["num_det"], res["per_class"]["b"]["num_det"]) == (100, 0)  # what was scored


def test_size_ranges_use_the_sources_area_when_given():
    # A 40 x 40 box (medium by its box area) whose mask covers only 900 px^2: small, as COCO counts it.
    box = np.array([[10.0, 10.0, 50.0, 50.0]])
    pred = {"image_id": 1, "boxes": box, "scores": np.array([0.9]), "labels": np.array([0])}
    gt = {"image_id": 1, "boxes": box, "labels": np.array([0]), "height": 100, "width": 100}
    by_box = evaluate(["a"], [gt], [pred])
    by_mask = evaluate(["a"], [{**gt, "area": np.array([900.0])}], [pred])
    assert by_box["coco_apm"] == pytest.approx(1.0) and np.isnan(by_box["coco_aps"])
    assert by_mask["coco_aps"] == pytest.approx(1.0) and np.isnan(by_mask["coco_apm"])


def test_no_predictions_leave_size_ranges_without_objects_undefined():
    # Only medium objects (40 x 40): small and large have nothing to find, as pycocotools' -1 says.
    gts = [{"image_id": 1, "boxes": np.array([[0.0, 0.0, 40.0, 40.0]]), "labels": np.array([0]), "height": 100,
            "width": 100}]
    with pytest.warns(UserWarning, match="no predictions"):
        res = evaluate(["a"], gts, [])
    assert res["coco_ap"] == 0.0 and res["coco_apm"] == 0.0 and res["coco_arm"] == 0.0
    assert all(np.isnan(res[k]) for k in ("coco_aps", "coco_apl", "coco_ars", "coco_arl"))
