import pytest
import torch

from zoo.models.losses.multibox import MultiBoxLoss


def test_loss_is_zero_without_positives_and_normalised_by_matches():
    scores = torch.randn(1, 10, 3)
    labels = torch.zeros(1, 10, dtype=torch.long)
    out = MultiBoxLoss()(scores, torch.randn(1, 10, 4), labels, torch.zeros(1, 10, 4))
    assert out["cls"].item() == 0 and out["loc"].item() == 0


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

    torch.manual_seed(0)
    sampled = MultiBoxLoss(sampler={"type": "random", "num": 2, "pos_fraction": 0.5})(
        scores, torch.zeros(2, 8, 4), labels, torch.zeros(2, 8, 4))
    assert sampled["cls"].item() < mined["cls"].item()  # 2 anchors an image, normalised by its 2 positives
    ohem = MultiBoxLoss(sampler={"type": "ohem", "num": 2, "nms_threshold": None})(
        scores, torch.zeros(2, 8, 4), labels, torch.zeros(2, 8, 4))
    hardest = ce.masked_fill(labels < 0, -1).topk(2, dim=1).values.sum()
    # image 0's two hardest are its positive and its first negative, image 1's its two positives: 3 positives
    assert ohem["cls"].item() == pytest.approx(hardest.item() / 3)
