"""CornerNet: radius, targets, losses, ideal-map decoding, and every config trains a step."""
import pytest
import torch
from torchvision.ops import box_iou

from tests.conftest import TINY
from zoo.config import model_node
from zoo.engine.trainer import Trainer
from zoo.models.detectors import build_detector
from zoo.models.losses.corner import CornerNetLoss, corner_focal_loss, embedding_losses
from zoo.task.corner_targets import build_corner_targets, corner_radius


@pytest.mark.parametrize("w,h", [(10.0, 10.0), (40.0, 12.0), (7.0, 90.0), (200.0, 150.0)])
def test_corners_moved_by_the_radius_keep_iou_03(w, h):
    r = float(corner_radius(torch.tensor([w]), torch.tensor([h]))[0])
    gt = torch.tensor([0.0, 0.0, w, h])
    moved = {"shifted": gt + torch.tensor([r, r, r, r]), "shrunk": gt + torch.tensor([r, r, -r, -r]),
             "grown": gt + torch.tensor([-r, -r, r, r])}
    ious = {name: float(box_iou(gt[None], box[None])) for name, box in moved.items()}
    assert min(ious.values()) == pytest.approx(0.3, abs=1e-4), ious  # the radius is tight ...
    assert all(v >= 0.3 - 1e-4 for v in ious.values()), ious  # ... and every worst case keeps 0.3


def _targets():
    return [{"boxes": torch.tensor([[9.0, 13.0, 61.0, 45.0], [70.0, 21.0, 118.0, 90.0]]), "labels": torch.tensor([0, 2]),
             "ignore": torch.tensor([False, False])},
            {"boxes": torch.tensor([[4.0, 4.0, 40.0, 30.0], [50.0, 50.0, 90.0, 90.0]]), "labels": torch.tensor([1, 1]),
             "ignore": torch.tensor([False, True])}]


def test_targets_put_peaks_offsets_and_indices_at_the_corners():
    t = build_corner_targets(_targets(), 3, (24, 40), stride=4)  # H != W: catches y * H + x and x/y swaps
    assert t.heat.shape == (2, 2, 3, 24, 40) and t.mask.tolist() == [[True, True], [True, False]]
    # first object: top-left (9, 13) / 4 = (2.25, 3.25) -> cell x 2, y 3; bottom-right (61, 45) / 4 -> (15, 11)
    assert t.heat[0, 0, 0, 3, 2] == 1 and t.heat[0, 1, 0, 11, 15] == 1
    assert t.index[0, :, 0].tolist() == [3 * 40 + 2, 11 * 40 + 15]
    # second object (70, 21)-(118, 90): offsets (0.5, 0.25) and (0.5, 0.5), x and y told apart
    assert torch.allclose(t.offset[0, :, 1], torch.tensor([[0.5, 0.25], [0.5, 0.5]]))
    assert (t.heat == 1).sum() == 6  # 3 kept objects x 2 corners; the ignored one has none
    # The ignored object's corner neighbourhood is not penalised, the rest of the map is.
    assert t.ignore[1, 0, 1, 12, 12] and not t.ignore[1, 0, 1, 0, 31]
    assert 0 < t.heat[0, 0, 0, 3, 3] < 1  # penalty reduced next to a corner


def test_a_corner_on_the_far_border_keeps_its_offset():
    target = [{"boxes": torch.tensor([[10.0, 10.0, 159.0, 95.0]]), "labels": torch.tensor([0])}]
    t = build_corner_targets(target, 1, (24, 40), stride=4)  # a 160 x 96 input
    assert t.index[0, 1, 0] == 23 * 40 + 39  # the last cell
    assert torch.allclose(t.offset[0, 1, 0], torch.tensor([159 / 4 - 39, 95 / 4 - 23]))


def test_authors_radius_is_wider():
    r = corner_radius(torch.tensor([10.0]), torch.tensor([10.0]), formula="authors")
    assert r.item() == pytest.approx(4.95, abs=0.01)  # against 2.26 exact
    with pytest.raises(ValueError, match="radius_formula"):
        corner_radius(torch.tensor([10.0]), torch.tensor([10.0]), formula="paper")


def test_paper_rows_use_the_release_radius_at_its_overlap_of_0_7():
    from hydra import compose, initialize_config_dir

    from zoo.config.paths import CONF_DIR

    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        targets = compose("train", overrides=["experiment=cornernet_table1_corner_pool"]).model.targets
    assert (targets.radius_formula, targets.min_overlap) == ("authors", 0.7)
    side = torch.tensor([20.0])
    release = corner_radius(side, side, targets.min_overlap, targets.radius_formula).item()
    # near the exact radius at the paper's stated 0.3 (4.52), not the 9.9 of the release formula at 0.3
    assert release == pytest.approx(5.47, abs=0.01)
    assert corner_radius(side, side, 0.3, "exact").item() == pytest.approx(4.52, abs=0.01)


def test_batch_with_an_empty_image_and_an_all_ignored_one():
    batch = [_targets()[0], {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)},
             {"boxes": torch.tensor([[4.0, 4.0, 40.0, 30.0]]), "labels": torch.tensor([1]), "ignore": torch.tensor([True])}]
    t = build_corner_targets(batch, 3, (32, 32), stride=4)
    assert t.mask.sum(1).tolist() == [2, 0, 0] and (t.heat[1:] == 0).all() and t.ignore[2].any()
    outputs = [{"heat": torch.zeros(3, 2, 3, 32, 32), "embed": torch.zeros(3, 2, 32, 32),
                "offset": torch.zeros(3, 2, 2, 32, 32)}]
    assert all(torch.isfinite(v) for v in CornerNetLoss()(outputs, t).values())


def test_radius_switches():
    fixed = build_corner_targets(_targets(), 3, (32, 32), stride=4, fixed_radius=2.5)
    # radius 2.5: sigma = 1, cells up to 2 away get exp(-d^2 / 2), 3 away nothing
    assert fixed.heat[0, 0, 0, 3, 4] == pytest.approx(torch.exp(torch.tensor(-2.0)).item())
    assert fixed.heat[0, 0, 0, 3, 5] == 0
    flat = build_corner_targets(_targets(), 3, (32, 32), stride=4, penalty_reduction=False)
    assert set(flat.heat.unique().tolist()) == {0.0, 1.0} and (flat.heat == 1).sum() == 6


def test_focal_loss_on_a_hand_case():
    heat = torch.tensor([1.0, 0.5, 0.0])
    logits = torch.tensor([0.0, 0.0, 0.0])  # p = 0.5 everywhere
    log_half = torch.log(torch.tensor(0.5))
    # positive: (1 - .5)^2 log .5; negatives: (1 - .5)^4 .5^2 log .5 and 1 * .5^2 log .5; one corner
    expected = -(0.25 * log_half + 0.0625 * 0.25 * log_half + 0.25 * log_half)
    assert corner_focal_loss(logits, heat) == pytest.approx(expected.item())
    ignore = torch.tensor([False, False, True])
    assert corner_focal_loss(logits, heat, ignore) == pytest.approx(-(0.25 + 0.015625) * log_half.item())


def test_pull_and_push_on_a_hand_case():
    mask = torch.tensor([[True, True, False]])
    pull, push = embedding_losses(torch.tensor([[0.0, 3.0, 9.0]]), torch.tensor([[2.0, 3.0, 9.0]]), mask)
    assert pull == pytest.approx(1.0) and push == 0  # means 1 and 3: pull (1 + 1 + 0) / 2, 2 apart
    pull, push = embedding_losses(torch.tensor([[1.0, 1.5, 1.5]]), torch.tensor([[1.0, 1.5, 1.5]]), mask)
    assert pull == 0 and push == pytest.approx(0.5)  # |1 - 1.5| = 0.5 short of the margin, 2 ordered pairs


def test_pull_and_push_are_per_image_means():
    # image 0: 2 objects, pull 1; image 1: 3 objects at one embedding, pull 0, push 1 per pair;
    # image 2: no objects (left out). Batch-pooled sums would give pull 2/5 and push 6/8 instead.
    tl = torch.tensor([[0.0, 3.0, 0.0], [5.0, 5.0, 5.0], [0.0, 0.0, 0.0]])
    br = torch.tensor([[2.0, 3.0, 0.0], [5.0, 5.0, 5.0], [0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False], [True, True, True], [False, False, False]])
    pull, push = embedding_losses(tl, br, mask)
    assert pull == pytest.approx((1.0 + 0.0) / 2) and push == pytest.approx((0.0 + 1.0) / 2)


def test_the_two_embedding_rules_by_hand_on_three_images_with_one_two_and_three_objects():
    # image A, 1 object: means 2; pull ((1-2)^2 + (3-2)^2) / 1 = 2; no pairs, push 0
    # image B, 2 objects: means 0 and 0.6; pull (0 + 0.2^2 + 0.2^2) / 2 = 0.04; push 2 x (1 - 0.6) / 2 pairs = 0.4
    # image C, 3 objects: means 0, 0.5, 3; pull (0.2^2 + 0.2^2) / 3; push 2 x (1 - 0.5) / 6 pairs = 1/6
    tl = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.4, 0.0], [0.0, 0.3, 3.0]])
    br = torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.8, 0.0], [0.0, 0.7, 3.0]])
    mask = torch.tensor([[True, False, False], [True, True, False], [True, True, True]])
    pull_a, pull_b, pull_c = 2.0, 0.04, 0.08 / 3
    push_b, push_c = 0.4, 1 / 6
    pull, push = embedding_losses(tl, br, mask)  # mean: over the images with objects, with pairs for push
    assert pull == pytest.approx((pull_a + pull_b + pull_c) / 3) and push == pytest.approx((push_b + push_c) / 2)
    pull, push = embedding_losses(tl, br, mask, chunk=2)  # the authors': summed per chunk [A, B], [C], averaged
    assert pull == pytest.approx(((pull_a + pull_b) + pull_c) / 2) and push == pytest.approx(((0 + push_b) + push_c) / 2)
    pull, push = embedding_losses(tl, br, mask, chunk=5)  # one chunk holds the batch: the plain sums
    assert pull == pytest.approx(pull_a + pull_b + pull_c) and push == pytest.approx(push_b + push_c)


@pytest.mark.parametrize("settings, message", [
    ({"embedding_reduction": "sum"}, "embedding_reduction must be one of"),
    ({"embedding_reduction": "chunk_sum"}, "needs embedding_chunk"),
    ({"embedding_reduction": "chunk_sum", "embedding_chunk": 0}, "needs embedding_chunk"),
    ({"embedding_chunk": 5}, "only read with embedding_reduction=chunk_sum"),
])
def test_a_bad_embedding_rule_is_named(settings, message):
    with pytest.raises(ValueError, match=message):
        CornerNetLoss(**settings)


def test_the_paper_model_combines_the_embedding_terms_as_the_authors_and_the_lite_model_as_it_trained(compose_cfg):
    paper, lite = compose_cfg("model=cornernet_hg104").model.loss, compose_cfg("model=cornernet_lite").model.loss
    assert (paper.embedding_reduction, paper.embedding_chunk) == ("chunk_sum", 5)  # 49 images as 4 + 9 x 5 per GPU
    assert lite.get("embedding_reduction", "mean") == "mean" and lite.get("embedding_chunk") is None
    assert compose_cfg("model=cornernet_hg104", "trainer=cornernet_paper").trainer.batch_size == 49


def test_loss_is_zero_where_predictions_equal_the_targets_and_exact_off_it():
    targets = _targets()
    t = build_corner_targets(targets, 3, (24, 40), stride=4)
    embed, offset = torch.zeros(2, 2, 24, 40), torch.zeros(2, 2, 2, 24, 40)
    for b in range(2):
        for k in range(int(t.mask[b].sum())):
            for c in range(2):
                y, x = divmod(int(t.index[b, c, k]), 40)
                embed[b, c, y, x] = 3.0 * k
                offset[b, c, :, y, x] = t.offset[b, c, k]
    out = {"heat": torch.full((2, 2, 3, 24, 40), -20.0), "embed": embed, "offset": offset}
    loss = CornerNetLoss()([out], t)
    assert loss["off"] == 0 and loss["pull"] == 0 and loss["push"] == 0
    y, x = divmod(int(t.index[0, 1, 1]), 40)
    out["offset"][0, 1, 1, y, x] += 0.5  # the y offset of object 1's bottom-right corner, off by 0.5
    # smooth L1 (beta 1) of 0.5 is 0.125, over the 3 objects, weight 1
    assert CornerNetLoss()([out], t)["off"] == pytest.approx(0.125 / 3)


def _lite(compose_cfg, *overrides):
    cfg = compose_cfg("model=cornernet_lite", *overrides)
    return build_detector(model_node(cfg.model), 3)


def test_ideal_maps_decode_to_the_ground_truth_exactly(compose_cfg):
    model = _lite(compose_cfg).eval()
    targets = _targets()[:1]
    t = build_corner_targets(targets, 3, (32, 48), stride=4)
    heat = torch.logit(t.heat.clamp(1e-6, 1 - 1e-6))
    embed = torch.zeros(1, 2, 32, 48)
    offset = torch.zeros(1, 2, 2, 32, 48)
    for k in range(2):  # object k's corners share the embedding 2k, far from the other's
        for c in range(2):
            y, x = divmod(int(t.index[0, c, k]), 48)
            embed[0, c, y, x] = 2.0 * k
            offset[0, c, :, y, x] = t.offset[0, c, k]
    out = model._detect({"heat": heat, "embed": embed, "offset": offset}, [(128, 192)])[0]
    top = out["scores"].argsort(descending=True)[:2]
    found = sorted(zip(out["boxes"][top].tolist(), out["labels"][top].tolist()))
    expected = sorted(zip(targets[0]["boxes"].tolist(), targets[0]["labels"].tolist()))
    assert found == [(pytest.approx(b, abs=1e-4), lb) for b, lb in expected]
    assert out["scores"][top].min() > 0.99 and (out["scores"] <= 1).all()


def test_corner_types_use_their_pools_in_order(compose_cfg):
    from zoo.ops.corner_pool import bottom_pool, left_pool, right_pool, top_pool
    stack = _lite(compose_cfg).head.stacks[0]
    assert list(stack) == ["top_left", "bottom_right"]  # type 0 of every output is top-left
    assert stack["top_left"]["pool"].pools == (top_pool, left_pool)
    assert stack["bottom_right"]["pool"].pools == (bottom_pool, right_pool)


def test_corner_pool_switch_removes_the_pools(compose_cfg):
    with_pool = _lite(compose_cfg)
    without = _lite(compose_cfg, "model.head.corner_pool=false")
    pools = without.head.stacks[0]["top_left"]["pool"].pools
    assert all(isinstance(p, torch.nn.Identity) for p in pools)
    assert sum(p.numel() for p in with_pool.parameters()) == sum(p.numel() for p in without.parameters())


def test_training_forward_contract(compose_cfg):
    torch.manual_seed(0)
    model = _lite(compose_cfg).train()
    losses = model(torch.randn(2, 3, 128, 128), _targets())
    assert set(losses) == {"corner/heat", "corner/pull", "corner/push", "corner/off"}
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}] * 2
    assert all(torch.isfinite(v) for v in model(torch.randn(2, 3, 128, 128), empty).values())


def test_unknown_target_key_is_named(compose_cfg):
    with pytest.raises(Exception, match="model.targets: unknown key"):
        _lite(compose_cfg, "+model.targets.radius=3")


@pytest.mark.parametrize("extra", [(), ("model.head.corner_pool=false",), ("model.targets.fixed_radius=2.5",),
                                   ("model.targets.penalty_reduction=false",)])
def test_cornernet_lite_trains_a_step_and_evaluates(compose_cfg, tmp_path, extra):
    cfg = compose_cfg(*TINY, "model=cornernet_lite", "model.input_size=128", "trainer.max_iters=1",
                      "trainer.eval_every=0", *extra)
    results = Trainer(cfg, tmp_path).fit()
    assert 0.0 <= results["metrics"]["voc07_map50"] <= 1.0


def test_cornernet_hg104_parameter_count(compose_cfg):
    """Two Hourglass stacks and two prediction modules per stack, 80 classes: 201,035,212 parameters."""
    model = build_detector(model_node(compose_cfg("model=cornernet_hg104").model), 80)
    assert sum(p.numel() for p in model.parameters()) == 201_035_212


def test_nms_none_returns_every_decoded_pair_best_first(compose_cfg):
    from zoo.task.corner_decode import decode_corners

    model = build_detector(model_node(compose_cfg("model=cornernet_lite", "model.test.nms=none",
                                                  "model.test.max_detections=500").model), 3)
    torch.manual_seed(0)
    out = {"heat": torch.randn(2, 2, 3, 32, 32), "embed": torch.zeros(2, 2, 32, 32), "offset": torch.zeros(2, 2, 2, 32, 32)}
    found = model._detect(out, [(128, 128)] * 2)
    boxes, scores, _, valid = decode_corners(out["heat"], out["embed"], out["offset"], model.stride)
    for d, b, s, v in zip(found, boxes, scores, valid):
        n = min(500, int(v.sum()))
        assert n > 100 and len(d["scores"]) == n and (d["scores"][:-1] >= d["scores"][1:]).all()
        assert torch.equal(d["scores"], s[:n]) and torch.equal(d["boxes"], b[:n].clamp(0, 128))
    narrow = model._detect(out, [(128, 128), (128, 40)])[1]["boxes"]  # the second image is padded from x = 40
    assert len(narrow) and (narrow[:, 2] <= 40).all() and (narrow[:, 2] > narrow[:, 0]).all()
    with pytest.raises(ValueError, match="unknown soft-NMS method 'gausian'"):
        build_detector(model_node(compose_cfg("model=cornernet_lite", "model.test.nms=gausian").model), 3)


def test_the_release_radius_takes_the_box_sides_rounded_up_to_whole_cells():
    # A 41 x 41 px box is 10.25 x 10.25 cells at stride 4; the release measures it as 11 x 11 before its formula.
    box = {"boxes": torch.tensor([[0.0, 0.0, 41.0, 41.0]]), "labels": torch.tensor([0])}
    t = build_corner_targets([box], 1, (32, 32), stride=4, radius_formula="authors", min_overlap=0.7)
    radius = int(corner_radius(torch.tensor([11.0]), torch.tensor([11.0]), 0.7, "authors").floor())
    assert radius != int(corner_radius(torch.tensor([10.25]), torch.tensor([10.25]), 0.7, "authors").floor())
    row = t.heat[0, 0, 0, 0]  # the top-left corner's Gaussian along the top row
    assert int((row > 0).sum()) == radius + 1  # cells 0..radius lit
