"""The error breakdown on a hand-made image where every category occurs once."""
import numpy as np
import pytest

from zoo.evaluation import ErrorBreakdown, build_evaluators

GT = {"image_id": 1, "boxes": np.array([[0, 0, 100, 100], [200, 0, 300, 100], [0, 200, 100, 300]], float),
      "labels": np.array([0, 1, 0]), "ignore": np.array([False, False, True])}
DETECTIONS = [  # box, label, score, expected category (None: not counted)
    ([0, 0, 100, 100], 0, 0.9, "correct"),
    ([2, 2, 100, 100], 0, 0.8, "duplicate"),
    ([200, 0, 240, 80], 1, 0.7, "localisation"),  # IoU 0.32 with its own class's box
    ([0, 0, 90, 100], 1, 0.6, "classification"),  # on the class-0 box
    ([400, 400, 450, 450], 0, 0.5, "background"),
    ([0, 200, 100, 300], 0, 0.5, None),  # on the ignored box
    ([500, 0, 600, 100], 1, 0.1, None),  # below the score threshold
]


def test_each_category_is_counted_once():
    boxes, labels, scores, _ = zip(*DETECTIONS)
    ev = ErrorBreakdown(["a", "b"], score_threshold=0.3)
    ev.process([GT], [{"image_id": 1, "boxes": np.array(boxes, float), "labels": np.array(labels),
                       "scores": np.array(scores)}])
    out = ev.evaluate()
    assert out["per_class"]["a"] == {"correct": 1, "duplicate": 1, "localisation": 0, "classification": 0,
                                     "background": 1, "missed": 0}
    assert out["per_class"]["b"] == {"correct": 0, "duplicate": 0, "localisation": 1, "classification": 1,
                                     "background": 0, "missed": 1}
    assert out["errors_missed"] == 1 and out["errors_correct"] == 1
    assert "missed" in ev.format_table(out).splitlines()[1]


def test_image_without_predictions_misses_everything_not_ignored(tmp_path):
    ev = build_evaluators([{"type": "errors"}], ["a", "b"])[0]
    ev.process([GT], [])
    out = ev.evaluate()
    assert out["errors_missed"] == 2 and sum(out[f"errors_{c}"] for c in ("correct", "background")) == 0
    assert ev.plot(str(tmp_path))[0].endswith("errors.png")


def test_bad_thresholds_are_refused():
    with pytest.raises(ValueError, match="background_iou"):
        ErrorBreakdown(["a"], iou_threshold=0.3, background_iou=0.5)
