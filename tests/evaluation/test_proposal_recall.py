import pytest
import torch

from zoo.evaluation.proposal_recall import average_recall, best_pair_overlaps


def test_pairs_are_one_to_one_best_first():
    gts = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 8]])
    # One proposal equal to the first ground truth: it pairs with it (IoU 1), leaving the second 0.
    assert best_pair_overlaps(torch.tensor([[0.0, 0, 10, 10]]), gts).tolist() == [1.0, 0.0]
    # A second proposal then covers the second ground truth exactly.
    two = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 8]])
    assert best_pair_overlaps(two, gts).tolist() == [1.0, 1.0]


def test_average_recall_by_hand():
    gts = [torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]])]
    # IoU 0.6 with the first box (10 x 6 inside 10 x 10) and nothing near the second.
    proposals = [torch.tensor([[0.0, 0, 10, 6], [100, 100, 110, 110]])]
    ar = average_recall(proposals, gts, limits=(1, 2))
    # Thresholds 0.50, 0.55, 0.60 of 10 are reached by one of the two ground truths.
    assert ar["ar@1"] == pytest.approx(3 / 10 / 2) and ar["ar@2"] == pytest.approx(3 / 20)
    assert ar["recall@1_iou0.5"] == 0.5 and ar["recall@1_iou0.7"] == 0.0


def test_limits_cut_the_ranked_list():
    gts = [torch.tensor([[0.0, 0, 10, 10]])]
    proposals = [torch.tensor([[50.0, 50, 60, 60], [0, 0, 10, 10]])]
    ar = average_recall(proposals, gts, limits=(1, 2))
    assert ar["ar@1"] == 0.0 and ar["ar@2"] == 1.0


def test_checkpoint_proposal_recall_runs_end_to_end(compose_cfg, tmp_path):
    from tests.conftest import TINY
    from zoo.apis.evaluate import proposal_recall
    from zoo.engine.trainer import Trainer

    cfg = compose_cfg(*TINY, "model=faster_rcnn_lite", "model.input_size=128", "trainer.max_iters=1",
                      "trainer.eval_every=0")
    Trainer(cfg, tmp_path).fit()
    name, figures = proposal_recall(str(tmp_path / "checkpoints" / "last.pt"), split="val", limits=(10, 100),
                                    batch_size=4)
    assert name == "faster_rcnn_lite" and set(figures) >= {"rpn_ar10", "rpn_ar100", "rpn_recall100_iou50"}
    assert 0.0 <= figures["rpn_ar10"] <= figures["rpn_ar100"] <= 1.0


def test_proposal_recall_is_an_evaluator_the_trainer_runs(compose_cfg, tmp_path):
    """As a training evaluator it gets up to max(limits) proposals, more than the model keeps at test."""
    from tests.conftest import TINY
    from zoo.engine.trainer import Trainer

    cfg = compose_cfg(*TINY, "model=faster_rcnn_lite", "model.input_size=128", "trainer.max_iters=1",
                      "trainer.eval_every=0", "evaluator=rpn")
    results = Trainer(cfg, tmp_path).fit()
    assert set(results["metrics"]) >= {"voc07_map50", "rpn_ar100", "rpn_ar1000"}
    assert results["metrics"]["rpn_ar100"] <= results["metrics"]["rpn_ar1000"]


def test_proposal_recall_refuses_a_model_without_an_rpn(compose_cfg, tmp_path):
    import pytest

    from tests.conftest import TINY
    from zoo.engine.trainer import Trainer

    cfg = compose_cfg(*TINY, "trainer.max_iters=1", "trainer.eval_every=0", "evaluator=rpn")
    with pytest.raises(ValueError, match="scores RPN proposals; SingleStageDetector has none"):
        Trainer(cfg, tmp_path).fit()


def test_recall_by_object_size_pairs_each_size_on_its_own():
    small, large = [0.0, 0, 20, 20], [0.0, 0, 120, 120]  # areas 400 and 14400
    gts = [torch.tensor([small, large])]
    # One proposal equal to the small box and one on the large box at IoU 0.8 (96 x 120 inside 120 x 120).
    proposals = [torch.tensor([small, [0.0, 0, 96, 120]])]
    areas = [torch.tensor([400.0, 14400.0])]
    ar = average_recall(proposals, gts, limits=(2,), gt_areas=areas)
    assert ar["ar@2_small"] == 1.0
    assert ar["ar@2_large"] == pytest.approx(7 / 10)  # 0.50, 0.55, ..., 0.80 reached
    assert ar["ar@2_medium"] != ar["ar@2_medium"]  # no medium object: NaN
    # Pairing per size: the large box alone may take a proposal the small one would have taken.
    shared = [torch.tensor([[0.0, 0, 20, 20]])]
    ar = average_recall(shared, [torch.tensor([small, [0.0, 0, 22, 22]])], limits=(1,),
                        gt_areas=[torch.tensor([400.0, 484.0])])
    assert ar["ar@1_small"] == pytest.approx((1.0 + 0.0) / 2)
