"""multiclass_nms, the test-time post-processing SSD, RefineDet's ODM and the RoI head share."""
import torch

from zoo.models.postprocess import multiclass_nms

BOXES = torch.tensor([[0.0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60], [0, 0, 10, 10]])


def _run(scores, boxes=BOXES, **kw):
    settings = {"score_threshold": 0.1, "nms_threshold": 0.5, "max_detections": 100, "topk_per_class": 100, **kw}
    out = multiclass_nms(boxes, torch.tensor(scores), **settings)
    return [(int(label), round(float(score), 3)) for label, score in zip(out["labels"], out["scores"])], out


def test_overlaps_are_suppressed_within_a_class_only_and_the_best_come_first():
    # anchors 0 and 1 overlap (IoU 0.82); anchor 3 is anchor 0's box
    found, out = _run([[0.9, 0.0], [0.8, 0.7], [0.3, 0.0], [0.0, 0.6]])
    assert found == [(0, 0.9), (1, 0.7), (0, 0.3)]  # class 1's 0.6 is suppressed by its 0.7, not by class 0's 0.9
    assert out["boxes"].tolist() == [[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]]


def test_a_score_at_the_threshold_is_dropped():
    found, _ = _run([[0.1, 0.0], [0.0, 0.0], [0.11, 0.0], [0.0, 0.0]])
    assert found == [(0, 0.11)]


def test_topk_per_class_comes_before_nms_and_max_detections_after():
    scores = [[0.9, 0.0], [0.0, 0.0], [0.3, 0.5], [0.0, 0.4]]
    assert _run(scores, topk_per_class=1)[0] == [(0, 0.9), (1, 0.5)]  # class 0's 0.3 and class 1's 0.4 never enter
    assert _run(scores, max_detections=2)[0] == [(0, 0.9), (1, 0.5)]
    assert _run(scores)[0] == [(0, 0.9), (1, 0.5), (1, 0.4), (0, 0.3)]


def test_per_class_boxes_are_taken_from_the_class_row():
    boxes = torch.zeros(4, 2, 4)
    boxes[:, 0] = BOXES
    boxes[:, 1] = BOXES + 100  # class 1's boxes of the same anchors, elsewhere
    _, out = _run([[0.0, 0.0], [0.0, 0.0], [0.5, 0.6], [0.0, 0.0]], boxes=boxes)
    assert out["labels"].tolist() == [1, 0] and out["boxes"].tolist() == [[150, 150, 160, 160], [50, 50, 60, 60]]


def test_level_topk_keeps_each_levels_best_prior_class_pairs():
    """MMDetection's selection: per level the k best (prior, class) pairs above the threshold, then per-class NMS."""
    from zoo.models.postprocess import level_topk_nms

    boxes = torch.tensor([[0.0, 0, 10, 10], [100, 100, 110, 110], [200, 200, 210, 210],   # level 0: 3 priors
                          [300, 300, 310, 310], [400, 400, 410, 410]])                    # level 1: 2 priors
    scores = torch.tensor([[0.9, 0.8], [0.7, 0.05], [0.6, 0.5],
                           [0.3, 0.2], [0.01, 0.4]])
    found = level_topk_nms(boxes, scores, [3, 2], score_threshold=0.1, nms_threshold=0.5, max_detections=10,
                           topk_per_level=2)
    pairs = {(int(b[0]) // 100, int(label)) for b, label in zip(found["boxes"], found["labels"])}
    assert pairs == {(0, 0), (0, 1), (4, 1), (3, 0)}  # level 0: 0.9, 0.8; level 1: 0.4, 0.3 (0.2 is third)
    assert found["scores"].tolist() == sorted(found["scores"].tolist(), reverse=True)
