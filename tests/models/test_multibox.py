import pytest
import torch

from zoo.models.losses.multibox import MultiBoxLoss
from zoo.registry import SAMPLERS
from zoo.task.samplers import sample_masks


def test_loss_is_zero_without_positives():
    scores = torch.randn(1, 10, 3)
    labels = torch.zeros(1, 10, dtype=torch.long)
    out = MultiBoxLoss()(scores, torch.randn(1, 10, 4), labels, torch.zeros(1, 10, 4))
    assert out["cls"].item() == 0 and out["loc"].item() == 0


def test_the_box_loss_is_smooth_l1_on_positives_over_their_count_times_the_weight():
    labels = torch.tensor([[1, 2, 0, -1]])
    deltas = torch.zeros(1, 4, 4)
    deltas[0, 0, 0] = 0.5  # smooth L1 (beta 1): 0.5 * 0.5^2 = 0.125
    deltas[0, 1, 3] = -3.0  # |x| - 0.5 = 2.5
    deltas[0, 2:] = 9.0  # a negative's and an ignored anchor's offsets never count
    out = MultiBoxLoss(loc_weight=2.0)(torch.zeros(1, 4, 3), deltas, labels, torch.zeros(1, 4, 4))
    assert out["loc"].item() == pytest.approx(2.0 * (0.125 + 2.5) / 2)
    half_beta = MultiBoxLoss(smooth_l1_beta=0.5)(torch.zeros(1, 4, 3), deltas, labels, torch.zeros(1, 4, 4))
    assert half_beta["loc"].item() == pytest.approx((0.25 + 2.75) / 2)  # 0.5-0.25, 3-0.25: both past beta


def test_ignored_and_excluded_anchors_never_count():
    scores = torch.zeros(1, 6, 2)
    scores[0, :, 1] = 5.0  # every anchor confidently foreground
    labels = torch.tensor([[1, -1, 0, 0, 0, 0]])
    exclude = torch.tensor([[False, False, True, True, True, False]])
    out = MultiBoxLoss()(scores, torch.zeros(1, 6, 4), labels, torch.zeros(1, 6, 4), exclude=exclude)
    ce_pos = torch.nn.functional.cross_entropy(scores[0, :1], torch.tensor([1]))
    ce_neg = torch.nn.functional.cross_entropy(scores[0, 5:], torch.tensor([0]))
    assert torch.allclose(out["cls"], ce_pos + ce_neg)


def test_the_sampler_swaps_with_one_config_line():
    """Default: every positive and 3 hardest negatives each; random 1:1 sampling and OHEM plug in unchanged."""
    scores = torch.zeros(2, 8, 3)
    scores[:, :, 0] = torch.arange(8.0)  # the later anchors are more confidently background: easier negatives
    labels = torch.tensor([[1, 0, 0, 0, 0, 0, 0, 0], [2, 1, 0, 0, 0, 0, -1, 0]])
    ce = torch.nn.functional.cross_entropy(scores.flatten(0, 1), labels.clamp(min=0).flatten(),
                                           reduction="none").view(2, 8)
    mined = MultiBoxLoss()(scores, torch.zeros(2, 8, 4), labels, torch.zeros(2, 8, 4))
    # image 0: its positive and negatives 1-3; image 1: both positives and all five of its negatives
    expected = (ce[0, :4].sum() + ce[1, [0, 1, 2, 3, 4, 5, 7]].sum()) / 3
    assert mined["cls"].item() == pytest.approx(expected.item())

    random_sampler = {"type": "random", "num": 2, "pos_fraction": 0.5}
    torch.manual_seed(0)
    sampled = MultiBoxLoss(sampler=random_sampler)(scores, torch.zeros(2, 8, 4), labels, torch.zeros(2, 8, 4))
    torch.manual_seed(0)  # the same draw: 2 anchors an image, a positive and a negative each
    positives, negatives = sample_masks(SAMPLERS.build(random_sampler), labels, ce)
    assert positives.sum(dim=1).tolist() == [1, 1] and negatives.sum(dim=1).tolist() == [1, 1]
    assert sampled["cls"].item() == pytest.approx((ce[positives | negatives].sum() / 2).item())
    ohem = MultiBoxLoss(sampler={"type": "ohem", "num": 2, "nms_threshold": None})(
        scores, torch.zeros(2, 8, 4), labels, torch.zeros(2, 8, 4))
    hardest = ce.masked_fill(labels < 0, -1).topk(2, dim=1).values.sum()
    # image 0's two hardest are its positive and its first negative, image 1's its two positives: 3 positives
    assert ohem["cls"].item() == pytest.approx(hardest.item() / 3)
