import torch

from zoo.models.losses.multibox import MultiBoxLoss, hard_negative_mask


def test_hard_negative_mask_keeps_three_per_positive_highest_loss():
    loss = torch.tensor([[0.9, 0.1, 0.8, 0.7, 0.6, 0.5, 0.2, 5.0]])
    negatives = torch.tensor([[True] * 7 + [False]])
    mask = hard_negative_mask(loss, negatives, torch.tensor([1]), 3.0)
    assert mask.tolist() == [[True, False, True, True, False, False, False, False]]


def test_hard_negative_quota_capped_by_available_negatives_and_zero_without_positives():
    loss = torch.rand(2, 6)
    negatives = torch.tensor([[True, True, False, False, False, False], [True] * 6])
    mask = hard_negative_mask(loss, negatives, torch.tensor([2, 0]), 3.0)
    assert mask[0].sum() == 2 and mask[1].sum() == 0


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
