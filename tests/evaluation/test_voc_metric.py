"""VOC mAP on hand-made cases whose answers are worked out in the comments.

Notation: a ranked list of detections is written as TP/FP in score order; rec and prec are the
cumulative recall and precision after each one. 11-point AP averages, over t = 0, .1, ..., 1, the
best precision at recall >= t; area AP integrates the monotone (right-to-left max) envelope.
"""
import math

import numpy as np
import pytest
import torch

from zoo.evaluation import VOCEvaluator
from zoo.evaluation.voc_ap import average_precision

CLASSES = ["cat", "dog"]
A = [0.0, 0.0, 10.0, 10.0]
B = [20.0, 20.0, 30.0, 30.0]
C = [40.0, 40.0, 50.0, 50.0]
FAR = [100.0, 100.0, 110.0, 110.0]  # overlaps nothing


def gt(image_id, boxes, labels=None, ignore=None):
    labels = [0] * len(boxes) if labels is None else labels
    return {"image_id": image_id, "boxes": np.array(boxes, float).reshape(-1, 4), "labels": np.array(labels),
            "ignore": np.array(ignore if ignore is not None else [False] * len(boxes)), "height": 200, "width": 200}


def pred(image_id, boxes, scores, labels=None):
    labels = [0] * len(boxes) if labels is None else labels
    return {"image_id": image_id, "boxes": np.array(boxes, float).reshape(-1, 4), "scores": np.array(scores, float),
            "labels": np.array(labels)}


def run(gts, preds, **kwargs):
    ev = VOCEvaluator(CLASSES, **kwargs)
    ev.process(gts, preds)
    return ev.evaluate()


def both_metrics(gts, preds, **kwargs):
    """(11-point AP, area AP) of class 'cat'."""
    return tuple(run(gts, preds, use_07_metric=m, **kwargs)["per_class"]["cat"]["ap"] for m in (True, False))


def test_perfect_detections_score_one():
    gts = [gt(1, [A, B], [0, 1]), gt(2, [C, A], [0, 0])]
    preds = [pred(1, [A, B], [0.9, 0.8], [0, 1]), pred(2, [C, A], [0.7, 0.6], [0, 0])]
    for use_07, key in ((True, "voc07_map50"), (False, "voc_map50")):
        res = run(gts, preds, use_07_metric=use_07)
        assert res[key] == 1.0
        assert res["per_class"]["cat"] == {"ap": 1.0, "num_gt": 3, "num_det": 3, "recall": 1.0}


def test_fp_ranked_above_tp_one_gt():
    # FP, TP: rec [0, 1], prec [0, .5]. 11-point: every t has recall 1 reachable at prec .5 -> 0.5.
    # Area: envelope .5 from recall 0 to 1 -> 0.5.
    assert both_metrics([gt(1, [A])], [pred(1, [FAR, A], [0.9, 0.8])]) == (0.5, 0.5)


def test_fp_ranked_above_tp_two_gts():
    # 2 GT. FP, TP: rec [0, .5], prec [0, .5]. 11-point: t = 0..0.5 (6 values) -> .5, t = .6..1 -> 0:
    # 3/11. Area: .5 precision over recall [0, .5] -> 0.25.
    ap07, ap = both_metrics([gt(1, [A, B])], [pred(1, [FAR, A], [0.9, 0.8])])
    assert ap07 == pytest.approx(3 / 11, abs=1e-12)
    assert ap == pytest.approx(0.25, abs=1e-12)


def test_tp_fp_tp_three_gts():
    # 3 GT. TP, FP, TP: rec [1/3, 1/3, 2/3], prec [1, 1/2, 2/3].
    # 11-point: t = 0, .1, .2, .3 -> 1 (4 values); t = .4, .5, .6 -> 2/3 (3 values); t >= .7 -> 0: 6/11.
    # Area: envelope 1 on [0, 1/3], 2/3 on [1/3, 2/3]: 1/3 + 2/9 = 5/9.
    ap07, ap = both_metrics([gt(1, [A, B, C])], [pred(1, [A, FAR, B], [0.9, 0.8, 0.7])])
    assert ap07 == pytest.approx(6 / 11, abs=1e-12)
    assert ap == pytest.approx(5 / 9, abs=1e-12)


def test_duplicate_detection_is_a_false_positive():
    # 2 GT. A (TP), A again (FP), B (TP): rec [.5, .5, 1], prec [1, .5, 2/3].
    # 11-point: t <= .5 -> 1 (6 values), t >= .6 -> 2/3 (5 values): (6 + 10/3) / 11 = 28/33.
    # Area: 1 on [0, .5], 2/3 on [.5, 1]: 5/6. (Without the FP both would be 1.)
    ap07, ap = both_metrics([gt(1, [A, B])], [pred(1, [A, A, B], [0.9, 0.8, 0.7])])
    assert ap07 == pytest.approx(28 / 33, abs=1e-12)
    assert ap == pytest.approx(5 / 6, abs=1e-12)


def test_duplicate_does_not_fall_back_to_a_free_box():
    # Devkit rule: a detection looks only at its best-overlapping box. A2 overlaps A with IoU .9, so the
    # second copy of A is a duplicate (FP) even though A2 is free. 2 GT: TP, FP: rec [.5, .5], prec [1, .5]
    # -> 11-point 6/11, area .5.
    a2 = [0.0, 0.0, 10.0, 9.0]
    ap07, ap = both_metrics([gt(1, [A, a2])], [pred(1, [A, A], [0.9, 0.8])])
    assert ap07 == pytest.approx(6 / 11, abs=1e-12)
    assert ap == pytest.approx(0.5, abs=1e-12)


def test_ignored_ground_truth_is_neither_tp_nor_fp_nor_positive():
    # B is difficult. On-B (.95) is dropped; A (.9) is TP; FAR (.5) is FP. One positive:
    # rec [1, 1], prec [1, .5] -> AP 1 with both metrics. Had on-B been an FP, AP would be .5;
    # had B counted as a positive, recall would stop at .5.
    gts = [gt(1, [A, B], ignore=[False, True])]
    preds = [pred(1, [B, A, FAR], [0.95, 0.9, 0.5])]
    assert both_metrics(gts, preds) == (1.0, 1.0)
    cat = run(gts, preds)["per_class"]["cat"]
    assert (cat["num_gt"], cat["num_det"], cat["recall"]) == (1, 3, 1.0)


def test_class_with_only_ignored_ground_truth_is_left_out_of_the_mean():
    gts = [gt(1, [A, B], labels=[0, 1], ignore=[False, True])]
    res = run(gts, [pred(1, [A, B], [0.9, 0.9], [0, 1])])
    assert math.isnan(res["per_class"]["dog"]["ap"]) and res["per_class"]["dog"]["num_gt"] == 0
    assert res["voc07_map50"] == 1.0  # the mean of 'cat' alone


def test_class_without_detections_scores_zero_and_counts_in_the_mean():
    res = run([gt(1, [A, B], labels=[0, 1])], [pred(1, [A], [0.9], [0])])
    assert res["per_class"]["dog"] == {"ap": 0.0, "num_gt": 1, "num_det": 0, "recall": 0.0}
    assert res["voc07_map50"] == 0.5  # (1 + 0) / 2


@pytest.mark.parametrize(("height", "matches"), [(5.1, True), (5.0, True), (4.9, False)])
def test_iou_threshold_boundary(height, matches):
    # IoU of [0, 0, 10, h] with A is 10h / 100: .51 and exactly .50 match (>=, as the devkit), .49 does not.
    ap07, ap = both_metrics([gt(1, [A])], [pred(1, [[0.0, 0.0, 10.0, height]], [0.9])])
    assert (ap07, ap) == ((1.0, 1.0) if matches else (0.0, 0.0))


def test_other_iou_threshold_and_key_names():
    # IoU .8: matches at 0.75, not at 0.85.
    gts, preds = [gt(1, [A])], [pred(1, [[0.0, 0.0, 10.0, 8.0]], [0.9])]
    assert run(gts, preds, iou_threshold=0.75)["voc07_map75"] == 1.0
    assert run(gts, preds, iou_threshold=0.85, use_07_metric=False)["voc_map85"] == 0.0


def test_detections_are_ranked_across_images():
    # Image 1: TP (.6). Image 2: FP (.9), TP (.3). Ranked: FP, TP, TP: rec [0, .5, 1], prec [0, .5, 2/3].
    # Every t reaches recall 1 at prec 2/3 -> 11-point 2/3; envelope 2/3 over [0, 1] -> area 2/3.
    gts = [gt(1, [A]), gt(2, [B])]
    preds = [pred(1, [A], [0.6]), pred(2, [FAR, B], [0.9, 0.3])]
    ap07, ap = both_metrics(gts, preds)
    assert ap07 == pytest.approx(2 / 3, abs=1e-12) and ap == pytest.approx(2 / 3, abs=1e-12)


def test_score_ties_rank_by_image_id_then_list_order():
    # Equal scores: the detection of the smaller image_id ranks first, whatever order images came in.
    # FP (image 1) then TP (image 2): AP .5 (as in test_fp_ranked_above_tp_one_gt).
    ev = VOCEvaluator(CLASSES)
    ev.process([gt(2, [A])], [pred(2, [A], [0.8])])
    ev.process([gt(1, [])], [pred(1, [FAR], [0.8])])
    assert ev.evaluate()["voc07_map50"] == 0.5
    # Within one image, list order: TP before FP -> AP 1.
    assert both_metrics([gt(1, [A])], [pred(1, [A, FAR], [0.8, 0.8])]) == (1.0, 1.0)


def test_empty_predictions():
    gts = [gt(1, [A, B], labels=[0, 1])]
    for preds in ([], [pred(1, [], [])]):
        res = run(gts, preds)
        assert res["voc07_map50"] == 0.0
        assert res["per_class"]["cat"] == {"ap": 0.0, "num_gt": 1, "num_det": 0, "recall": 0.0}


def test_predictions_without_ground_truth_entry_are_false_positives():
    # Image 2 has no ground-truth entry at all: its detection (.9) is an FP ranked first. FP, TP -> .5.
    assert both_metrics([gt(1, [A])], [pred(1, [A], [0.5]), pred(2, [A], [0.9])]) == (0.5, 0.5)


def test_no_ground_truth_at_all_gives_nan_with_a_warning():
    with pytest.warns(UserWarning, match="no .*ground truth"):
        res = run([], [pred(1, [A], [0.9])])
    assert math.isnan(res["voc07_map50"])


def test_torch_tensors_are_accepted():
    gts = [{"image_id": torch.tensor(1), "boxes": torch.tensor([A, B]), "labels": torch.tensor([0, 1]),
            "ignore": torch.tensor([False, False]), "height": 200, "width": 200}]
    preds = [{"image_id": 1, "boxes": torch.tensor([A, B]), "scores": torch.tensor([0.9, 0.8]),
              "labels": torch.tensor([0, 1])}]
    assert run(gts, preds)["voc07_map50"] == 1.0


def test_processing_an_image_twice_raises_until_reset():
    ev = VOCEvaluator(CLASSES)
    ev.process([gt(1, [A])], [pred(1, [A], [0.9])])
    with pytest.raises(ValueError, match="image_id 1 were already processed"):
        ev.process([gt(1, [A])], [])
    with pytest.raises(ValueError, match="image_id 1 were already processed"):
        ev.process([], [pred(1, [A], [0.9])])
    ev.reset()
    ev.process([gt(1, [A])], [pred(1, [A], [0.9])])
    assert ev.evaluate()["voc07_map50"] == 1.0


def test_labels_out_of_range_are_rejected():
    with pytest.raises(ValueError, match=r"labels must lie in 0..1"):
        VOCEvaluator(CLASSES).process([], [pred(1, [A], [0.9], labels=[2])])


def test_average_precision_of_an_empty_ranking_is_zero():
    empty = np.zeros(0)
    assert average_precision(empty, empty, True) == 0.0
    assert average_precision(empty, empty, False) == 0.0


def test_eleven_point_thresholds_are_the_reference_scorers_floats():
    # 10 GT, 3 TPs: recall reaches exactly 3/10. The reference scorers' t = 0.3 is np.arange(0, 1.1, 0.1)[3],
    # 0.30000000000000004, which 3/10 does not reach: t = 0, .1, .2 -> 1, the rest 0 -> 3/11, not 4/11.
    boxes = [[20.0 * i, 0.0, 20.0 * i + 10.0, 10.0] for i in range(10)]
    ap07, ap = both_metrics([gt(1, boxes)], [pred(1, boxes[:3], [0.9, 0.8, 0.7])])
    assert ap07 == pytest.approx(3 / 11, abs=1e-12)
    assert ap == pytest.approx(0.3, abs=1e-12)
