"""Samplers: OHEM (the hardest candidates by loss, within quotas, near-duplicates suppressed; and through both
heads), SSD's hard-negative mining, and any sampler over a batch of dense predictions."""
import pytest
import torch

from zoo.registry import SAMPLERS
from zoo.task.samplers import HardNegativeSampler, OHEMSampler, RandomSampler, sample_masks

# labels: 3 positives, 4 negatives, 1 ignored (whose loss is the largest and must never be taken)
LABELS = torch.tensor([1, 0, 2, 0, 0, 1, 0, -1])
LOSSES = torch.tensor([0.5, 3.0, 0.1, 2.0, 0.2, 4.0, 1.0, 9.0])


def test_ohem_takes_the_hardest_ranked_together():
    pos, neg = OHEMSampler(num=3, pos_fraction=None, nms_threshold=None)(LABELS, LOSSES)
    assert sorted(pos.tolist()) == [5] and sorted(neg.tolist()) == [1, 3]


def test_ohem_quota_takes_the_hardest_of_each_part():
    pos, neg = OHEMSampler(num=4, pos_fraction=0.5, nms_threshold=None)(LABELS, LOSSES)
    assert pos.tolist() == [5, 0] and neg.tolist() == [1, 3]


def test_ohem_quota_fills_with_negatives_when_positives_run_out():
    pos, neg = OHEMSampler(num=6, pos_fraction=0.75, nms_threshold=None)(LABELS, LOSSES)
    assert pos.tolist() == [5, 0, 2] and neg.tolist() == [1, 3, 6]


def test_ohem_nms_drops_a_near_duplicate_of_a_harder_candidate():
    labels = torch.tensor([0, 0, 0])
    losses = torch.tensor([2.0, 1.5, 1.0])
    boxes = torch.tensor([[0.0, 0, 10, 10], [0.0, 0, 10, 11], [50.0, 50, 60, 60]])  # 1 overlaps 0 at IoU 0.91
    pos, neg = OHEMSampler(num=2, nms_threshold=0.7)(labels, losses, boxes)
    assert pos.numel() == 0 and neg.tolist() == [0, 2]


def test_ohem_errors_name_what_is_missing():
    with pytest.raises(ValueError, match="one loss per candidate"):
        OHEMSampler(nms_threshold=None)(LABELS)
    with pytest.raises(ValueError, match="needs the candidates' boxes"):
        OHEMSampler()(LABELS, LOSSES)
    with pytest.raises(ValueError, match="nms_threshold"):
        OHEMSampler(nms_threshold=1.5)
    with pytest.raises(ValueError, match="pos_fraction"):
        SAMPLERS.build({"type": "ohem", "pos_fraction": 0.0})


def test_only_ohem_asks_for_losses():
    assert OHEMSampler.needs_losses and not RandomSampler.needs_losses


def _hardest_rois_test_head(compose_cfg):
    from zoo.config import model_node
    from zoo.models.detectors import build_detector
    cfg = compose_cfg("model=faster_rcnn_lite", "model.roi_head.sampler.type=ohem", "model.roi_head.sampler.num=8",
                      "model.roi_head.sampler.pos_fraction=null", "+model.roi_head.sampler.nms_threshold=null")
    return build_detector(model_node(cfg.model), 3).roi_head.train()


def test_roi_head_ohem_keeps_the_rois_with_the_highest_loss(compose_cfg):
    torch.manual_seed(0)
    head = _hardest_rois_test_head(compose_cfg)
    features = [torch.randn(1, 96, 20, 20)]
    proposals = [torch.tensor([[0.0, 0, 40, 40], [100, 100, 200, 180], [10, 12, 44, 50], [200, 30, 300, 90]]
                              * 5) + torch.arange(20.0)[:, None]]
    target = {"boxes": torch.tensor([[5.0, 5, 45, 45], [105, 100, 205, 190]]), "labels": torch.tensor([0, 2])}
    rois, _, _ = head._sample(features, proposals, [target])
    candidates, all_labels, box_targets = head._label(proposals[0], target)
    with torch.no_grad():
        scores, deltas = head._predict(features, [candidates])
        cls, loc = head._roi_losses(scores, deltas, all_labels, box_targets)
    hardest = (cls + loc).topk(8).indices
    assert sorted(map(tuple, rois[0].tolist())) == sorted(map(tuple, candidates[hardest].tolist()))


@pytest.mark.parametrize("name", ["fpn_lite", "faster_rcnn_lite"])
def test_ohem_in_both_stages_trains_a_step(compose_cfg, name):
    from tests.models.test_two_stage import _model, _targets
    model, _ = _model(compose_cfg, name, "model.roi_head.sampler.type=ohem", "model.rpn.sampler.type=ohem",
                      "+model.rpn.sampler.nms_threshold=null")
    losses = model.train()(torch.randn(2, 3, 160, 192), _targets())
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.roi_head.cls.parameters())


def test_ohem_nms_sees_only_the_hardest_pool():
    labels = torch.zeros(6, dtype=torch.long)
    losses = torch.tensor([6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    boxes = torch.tensor([[0.0, 0, 10, 10]] * 6) + torch.arange(6.0)[:, None] * 100  # no overlaps
    _, neg = OHEMSampler(num=2, nms_pool=1)(labels, losses, boxes)
    assert neg.tolist() == [0, 1]


def test_hard_negatives_are_three_per_positive_by_loss_never_the_ignored():
    pos, neg = HardNegativeSampler()(LABELS, LOSSES)
    assert pos.tolist() == [0, 2, 5] and neg.tolist() == [1, 3, 4, 6]  # 9 wanted, 4 there; never the ignored 7
    _, neg = HardNegativeSampler(neg_pos_ratio=1.0)(LABELS, LOSSES)
    assert neg.tolist() == [1, 3, 6]
    _, neg = HardNegativeSampler(neg_pos_ratio=0.5)(LABELS, LOSSES)
    assert neg.tolist() == [1]  # 0.5 x 3 positives = 1 (rounded down)


def test_hard_negative_quota_is_capped_by_the_negatives_and_zero_without_positives_unless_a_minimum():
    labels = torch.tensor([[1, 1, 0, 0, -1, -1], [0, 0, 0, 0, 0, 0]])
    losses = torch.rand(2, 6)
    pos, neg = HardNegativeSampler().masks(labels, losses)
    assert pos.sum(1).tolist() == [2, 0] and neg.sum(1).tolist() == [2, 0]
    _, neg = HardNegativeSampler(min_negatives=2).masks(labels, losses)
    assert neg[1].sum() == 2 and neg[1, losses[1].topk(2).indices].all()
    with pytest.raises(ValueError, match="neg_pos_ratio >= 0"):
        SAMPLERS.build({"type": "hard_negative", "neg_pos_ratio": -1})


@pytest.mark.parametrize("node", [{"type": "hard_negative"}, {"type": "random", "num": 4},
                                  {"type": "ohem", "num": 4, "nms_threshold": None}])
def test_sample_masks_equals_the_sampler_image_by_image(node):
    sampler = SAMPLERS.build(node)
    labels = torch.stack([LABELS, LABELS.flip(0)])
    losses = torch.stack([LOSSES, LOSSES.flip(0)])
    torch.manual_seed(0)
    pos, neg = sample_masks(sampler, labels, losses)
    torch.manual_seed(0)
    for i in range(2):
        p, n = sampler(labels[i], losses[i])
        assert sorted(torch.nonzero(pos[i]).squeeze(1).tolist()) == sorted(p.tolist())
        assert sorted(torch.nonzero(neg[i]).squeeze(1).tolist()) == sorted(n.tolist())
