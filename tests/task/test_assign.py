"""assign_image: matcher output -> per-anchor labels (class + 1, 0 background, -1 ignored) and box targets."""
import torch

from zoo.task.assign import assign_image, assign_targets
from zoo.task.coders import DeltaXYWHCoder
from zoo.task.matchers import MaxIoUMatcher

ANCHORS = torch.tensor([[0.0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 25], [50, 50, 60, 60]])
CODER = DeltaXYWHCoder((1.0, 1.0, 1.0, 1.0))


def _target(boxes, labels, ignore=None):
    target = {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(labels)}
    if ignore is not None:
        target["ignore"] = torch.tensor(ignore)
    return target


def test_labels_are_the_class_plus_one_with_background_and_ignored_apart():
    # anchor 0 matches the box exactly, anchor 1 at IoU 0.82, anchor 2 at 0.4 (between the thresholds: ignored),
    # anchor 3 overlaps nothing (background)
    matcher = MaxIoUMatcher(pos_iou=0.5, neg_iou=0.3, low_quality="none")
    labels, targets = assign_image(ANCHORS, _target([[0, 0, 10, 10]], [2]), matcher, CODER)
    assert labels.tolist() == [3, 3, -1, 0]
    assert torch.equal(targets[0], torch.zeros(4))  # the anchor is the box
    assert torch.allclose(targets[1], CODER.encode(torch.tensor([[0.0, 0, 10, 10]]), ANCHORS[1:2])[0])
    assert torch.equal(targets[2:], torch.zeros(2, 4))  # nothing to regress where not positive
    binary, _ = assign_image(ANCHORS, _target([[0, 0, 10, 10]], [2]), matcher, CODER, binary=True)
    assert binary.tolist() == [1, 1, -1, 0]  # the RPN's objectness


def test_an_ignored_ground_truth_and_an_empty_image():
    matcher = MaxIoUMatcher(pos_iou=0.5, neg_iou=0.5, low_quality="none")
    labels, _ = assign_image(ANCHORS, _target([[0, 0, 10, 10], [50, 50, 60, 60]], [0, 1], [True, False]),
                             matcher, CODER)
    assert labels.tolist() == [-1, -1, 0, 2]  # matched to a difficult/crowd box: neither object nor background
    labels, targets = assign_image(ANCHORS, _target([], []), matcher, CODER)
    assert labels.tolist() == [0, 0, 0, 0] and torch.equal(targets, torch.zeros(4, 4))


def test_a_batch_stacks_the_images_and_takes_per_image_anchors():
    matcher = MaxIoUMatcher(pos_iou=0.5, neg_iou=0.5, low_quality="none")
    targets = [_target([[0, 0, 10, 10]], [0]), _target([[50, 50, 60, 60]], [1])]
    labels, boxes = assign_targets(ANCHORS, targets, matcher, CODER)
    assert labels.tolist() == [[1, 1, 0, 0], [0, 0, 0, 2]] and boxes.shape == (2, 4, 4)
    per_image = torch.stack([ANCHORS, ANCHORS.flip(0)])  # refined anchors: each image its own
    labels, _ = assign_targets(per_image, targets, matcher, CODER)
    assert labels.tolist() == [[1, 1, 0, 0], [2, 0, 0, 0]]
