"""Both COCO backends agree to 1e-4 on the real BCCD test split converted to COCO (skipped where BCCD
is not installed)."""
import numpy as np
import pytest

from tests.data.conftest import BCCD
from zoo.data.coco import COCODataset
from zoo.data.voc2coco import voc_to_coco, write_coco
from zoo.evaluation import COCOEvaluator
from zoo.evaluation.coco import STAT_KEYS

CLASSES = ["RBC", "WBC", "Platelets"]


@pytest.mark.skipif(not BCCD.is_dir(), reason=f"BCCD not found at {BCCD}")
def test_backends_agree_on_bccd_as_coco(tmp_path):
    ann_file = tmp_path / "bccd_test.json"
    write_coco(voc_to_coco(str(BCCD), "test", CLASSES), str(ann_file))
    dataset = COCODataset(str(ann_file), str(BCCD / "JPEGImages"), class_names=CLASSES)
    rng = np.random.default_rng(0)
    gts, preds = [], []
    for index in range(len(dataset)):
        gt = dataset.get_annotation(index)
        gts.append(gt)
        n = len(gt["boxes"])
        size = np.tile(gt["boxes"][:, 2:] - gt["boxes"][:, :2], 2)
        found = rng.random(n) < 0.85  # jittered hits, some misclassified, and background boxes
        boxes = (gt["boxes"] + rng.normal(0, 0.1, (n, 4)) * size)[found]
        labels = np.where(rng.random(n) < 0.9, gt["labels"], rng.integers(0, 3, n))[found]
        xy = rng.uniform(0, 500, (5, 2))
        preds.append({"image_id": gt["image_id"], "boxes": np.vstack([boxes, np.hstack([xy, xy + 40])]),
                      "labels": np.concatenate([labels, rng.integers(0, 3, 5)]),
                      "scores": rng.random(len(boxes) + 5)})
    results = {}
    for backend in ("pycocotools", "faster_coco_eval"):
        evaluator = COCOEvaluator(CLASSES, backend=backend)
        evaluator.process(gts, preds)
        results[backend] = evaluator.evaluate()
    reference, fast = results["pycocotools"], results["faster_coco_eval"]
    assert reference["coco_ap50"] > 0.3  # the predictions are informative, so agreement means something
    np.testing.assert_allclose([fast[k] for k in STAT_KEYS], [reference[k] for k in STAT_KEYS], rtol=0, atol=1e-4)
    for name in CLASSES:
        assert fast["per_class"][name]["ap"] == pytest.approx(reference["per_class"][name]["ap"], abs=1e-4)
