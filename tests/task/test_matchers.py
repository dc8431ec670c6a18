import pytest
import torch

from zoo.task.matchers import BACKGROUND, IGNORE, MaxIoUMatcher

ANCHORS = torch.tensor([[0.0, 0, 10, 10], [0, 0, 12, 12], [50, 50, 60, 60], [100, 100, 140, 140], [0, 0, 100, 100]])


def test_empty_targets_all_background():
    out = MaxIoUMatcher(0.5)(ANCHORS, torch.zeros(0, 4))
    assert out.tolist() == [BACKGROUND] * 5


def test_one_gt_matches_above_threshold_and_its_best():
    gt = torch.tensor([[0.0, 0, 11, 11]])
    out = MaxIoUMatcher(0.5)(ANCHORS, gt)
    assert out.tolist() == [0, 0, BACKGROUND, BACKGROUND, BACKGROUND]


def test_low_quality_best_keeps_an_unreachable_gt():
    gt = torch.tensor([[100.0, 100, 110, 110]])  # IoU 0.0625 with anchor 3, below 0.5
    assert MaxIoUMatcher(0.5, low_quality="best")(ANCHORS, gt)[3] == 0
    assert MaxIoUMatcher(0.5, low_quality="none")(ANCHORS, gt)[3] == BACKGROUND


def test_between_thresholds_is_ignored():
    gt = torch.tensor([[0.0, 0, 14, 14]])  # IoU 0.51 with anchor 0, 0.73 with anchor 1
    out = MaxIoUMatcher(0.7, 0.3, low_quality="none")(ANCHORS, gt)
    assert out[1] == 0 and out[0] == IGNORE


def test_crowded_each_gt_keeps_its_own_best_anchor():
    anchors = torch.tensor([[0.0, 0, 10, 10], [2, 0, 12, 10], [4, 0, 14, 10]])
    gts = torch.tensor([[0.0, 0, 10, 10], [2, 0, 12, 10], [4, 0, 14, 10]])
    assert MaxIoUMatcher(0.5)(anchors, gts).tolist() == [0, 1, 2]


def test_ignored_gt_makes_overlapping_anchors_ignored_not_background():
    gt = torch.tensor([[0.0, 0, 11, 11], [50, 50, 60, 60]])
    out = MaxIoUMatcher(0.5)(ANCHORS, gt, torch.tensor([False, True]))
    assert out[2] == IGNORE and out[0] == 0


def test_ties_mode_gives_every_tied_anchor():
    anchors = torch.tensor([[0.0, 0, 10, 10], [20, 0, 30, 10]])
    gt = torch.tensor([[5.0, 0, 25, 10]])  # IoU 1/3 with both
    assert MaxIoUMatcher(0.7, 0.3, low_quality="ties")(anchors, gt).tolist() == [0, 0]


def test_bad_thresholds_fail():
    with pytest.raises(ValueError, match="exceeds"):
        MaxIoUMatcher(0.3, 0.7)


def test_bipartite_gives_the_loser_of_a_shared_best_anchor_its_next_best():
    # Two small objects share their best anchor 0 (IoU 0.25 and 0.36), neither reaching 0.5 anywhere; anchor 1
    # is the first object's next best (IoU 36/464).
    anchors = torch.tensor([[0.0, 0, 20, 20], [4, 4, 24, 24], [60, 60, 80, 80]])
    gts = torch.tensor([[0.0, 0, 10, 10], [2, 2, 14, 14]])
    best = MaxIoUMatcher(0.5, low_quality="best")(anchors, gts).tolist()
    bipartite = MaxIoUMatcher(0.5, low_quality="bipartite")(anchors, gts).tolist()
    assert best == [1, BACKGROUND, BACKGROUND]  # the later object takes anchor 0; the first keeps nothing
    assert bipartite == [1, 0, BACKGROUND]  # highest IoU first: the second takes anchor 0, the first its next best
    crowded = torch.tensor([[0.0, 0, 10, 10], [2, 0, 12, 10], [4, 0, 14, 10]])
    assert MaxIoUMatcher(0.5, low_quality="bipartite")(crowded, crowded).tolist() == [0, 1, 2]  # as 'best'
