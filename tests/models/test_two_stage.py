import pytest
import torch
import torchvision
from torchvision.ops import MultiScaleRoIAlign

from tests.conftest import TINY
from zoo.config import model_node
from zoo.engine.trainer import Trainer
from zoo.models.detectors import build_detector
from zoo.models.heads.roi_box_head import RoIPooler
from zoo.models.necks.fpn import FPN
from zoo.task.matchers import IGNORE, MaxIoUMatcher
from zoo.task.samplers import RandomSampler


def _model(compose_cfg, name, *overrides, num_classes=3):
    cfg = compose_cfg(f"model={name}", *overrides)
    return build_detector(model_node(cfg.model), num_classes), cfg


def _targets():
    return [{"boxes": torch.tensor([[10.0, 20.0, 100.0, 120.0], [150.0, 40.0, 200.0, 90.0]]),
             "labels": torch.tensor([0, 2])},
            {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]


@pytest.mark.parametrize("positives,negatives,num,fraction,expected", [
    (10, 1000, 256, 0.5, (10, 246)), (500, 1000, 256, 0.5, (128, 128)), (500, 20, 256, 0.5, (128, 20)),
    (300, 5000, 512, 0.25, (128, 384)), (0, 5000, 128, 0.25, (0, 128))])
def test_random_sampler_quotas(positives, negatives, num, fraction, expected):
    labels = torch.cat([torch.full((positives,), 3), torch.zeros(negatives, dtype=torch.long),
                        torch.full((50,), -1)])[torch.randperm(positives + negatives + 50)]
    pos, neg = RandomSampler(num, fraction)(labels)
    assert (len(pos), len(neg)) == expected
    assert (labels[pos] > 0).all() and (labels[neg] == 0).all() and len(set(pos.tolist())) == len(pos)


def test_background_below_bg_min_iou_is_ignored():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 4.0], [0.0, 0.0, 10.0, 0.5], [50.0, 50, 60, 60]])
    matched = MaxIoUMatcher(0.5, 0.5, low_quality="none", bg_min_iou=0.1)(boxes, gt)
    assert matched.tolist() == [0, -1, IGNORE, IGNORE]  # IoU 1, 0.4 (background), 0.05, 0


def test_rpn_anchor_and_proposal_counts(compose_cfg):
    model, _ = _model(compose_cfg, "faster_rcnn_vgg16", num_classes=20)
    assert model.rpn.anchors_per_level == [9]
    features = [torch.randn(1, 512, 38, 50)]  # conv5_3 of a 600 x 800 image
    anchors = model.rpn.priors([f.shape[-2:] for f in features], (600, 800))
    assert anchors.shape == (38 * 50 * 9, 4)
    model.rpn.eval()
    with torch.no_grad():
        proposals, losses = model.rpn(features, (600, 800), [(600, 800)])
    assert losses == {} and proposals[0].shape[0] <= 300 and proposals[0].shape[1] == 4
    model.rpn.train()
    proposals, losses = model.rpn(features, (600, 800), [(600, 800)], _targets()[:1])
    assert 300 < proposals[0].shape[0] <= 2000 and set(losses) == {"obj", "loc"}


def test_fpn_rpn_proposals_are_chosen_per_level(compose_cfg):
    model, _ = _model(compose_cfg, "fpn_lite")
    sizes = [(40, 40), (20, 20), (10, 10), (5, 5)]
    features = [torch.randn(1, 96, *s) for s in sizes]
    rpn = model.rpn.eval()
    rpn.settings["test"].update(pre_nms_top_n=80, post_nms_top_n=10_000, nms_threshold=1.0)
    with torch.no_grad():
        proposals, _ = rpn(features, (320, 320), [(320, 320)])
    assert proposals[0].shape[0] == 80 * 3 + 5 * 5 * 3  # 80 from each level that has them, all 75 of the last


@pytest.mark.parametrize("kind", ["roi_align", "roi_pool"])
def test_roi_level_assignment_follows_k0_4(kind):
    """Each level is filled with its own index k, so the pooled value says where a RoI was pooled."""
    pooler = RoIPooler([4, 8, 16, 32], type=kind, output_size=2, sampling_ratio=1)
    features = [torch.full((2, 1, 512 // s, 512 // s), float(k)) for k, s in zip((2, 3, 4, 5), (4, 8, 16, 32))]
    boxes = torch.tensor([[0.0, 0, 224, 224], [0, 0, 112, 112], [0, 0, 56, 56], [0, 0, 28, 28], [0, 0, 255, 255],
                          [0, 0, 10, 10], [0, 0, 448, 448], [0, 0, 511, 511]])
    features[1][1] = -1.0  # the second image's P3: its RoIs there must be pooled from its own map
    pooled = pooler(features, [boxes, boxes[:2]])
    assert pooled.mean(dim=(1, 2, 3)).tolist() == [4.0, 3.0, 2.0, 2.0, 4.0, 2.0, 5.0, 5.0, 4.0, -1.0]


def test_roi_align_pools_as_torchvisions_multiscale_roi_align():
    torch.manual_seed(0)
    features = [torch.randn(2, 4, 64 // s, 80 // s) for s in (4, 8, 16, 32)]
    xy = torch.rand(2, 30, 2) * torch.tensor([70.0, 56.0])
    rois = list(torch.cat([xy, xy + torch.rand(2, 30, 2) * 60 + 1], dim=-1))
    ours = RoIPooler([4, 8, 16, 32], output_size=7, sampling_ratio=2)(features, rois)
    reference = MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)(dict(zip("0123", features)), rois, [(64, 80)] * 2)
    torch.testing.assert_close(ours, reference, rtol=0, atol=0)


def test_roi_pool_over_several_levels_needs_doubling_strides():
    with pytest.raises(ValueError, match="strides doubling from one to the next, got \\[4, 16\\]"):
        RoIPooler([4, 8, 16], type="roi_pool", strides=[4, 16])


def _fpn_inputs():
    return [torch.randn(1, c, s, s) for c, s in zip([8, 16, 32, 64], [32, 16, 8, 4])]


def test_fpn_default_wiring():
    fpn = FPN([8, 16, 32, 64], [4, 8, 16, 32], channels=8)
    outs = fpn(_fpn_inputs())
    assert fpn.strides == [4, 8, 16, 32, 64] and [o.shape[-1] for o in outs] == [32, 16, 8, 4, 2]
    assert len(fpn.laterals) == 4 and all(o.shape[1] == 8 for o in outs)


def test_rois_are_pooled_from_p2_to_p5_unless_told_otherwise(compose_cfg):
    fpn = FPN([8, 16, 32, 64], [4, 8, 16, 32], channels=8)
    assert fpn.roi_strides == [4, 8, 16, 32]  # P6 is the RPN's alone
    assert FPN([8, 16, 32, 64], [4, 8, 16, 32], channels=8, finest_only=True).roi_strides == [4]
    model, _ = _model(compose_cfg, "fpn_lite")
    assert model.neck.strides == [8, 16, 32, 64] and model.roi_head.pooler.strides == [8, 16, 32]
    p2_only, _ = _model(compose_cfg, "fpn_lite", "model.neck.finest_only=true",  # no pooler override needed
                        "model.rpn.priors.sizes=[[32,64,128,256]]")
    assert p2_only.roi_head.pooler.strides == [8]
    assert RoIPooler([4, 8, 16, 32, 64], roi_strides=[4, 8, 16, 32], strides=[8, 16]).strides == [8, 16]


def test_fpn_without_lateral_keeps_only_the_top_input():
    fpn = FPN([8, 16, 32, 64], [4, 8, 16, 32], channels=8, lateral=False)
    assert list(fpn.laterals) == ["3"]
    inputs = _fpn_inputs()
    before = fpn(inputs)[0]
    inputs[0] = inputs[0] + 1.0  # the finest input no longer reaches the output
    assert torch.equal(before, fpn(inputs)[0])


def test_fpn_without_top_down_keeps_levels_apart():
    fpn = FPN([8, 16, 32, 64], [4, 8, 16, 32], channels=8, top_down=False)
    inputs = _fpn_inputs()
    before = fpn(inputs)[0]
    inputs[3] = inputs[3] + 1.0  # the coarsest input no longer reaches the finest output
    assert torch.equal(before, fpn(inputs)[0])
    with_top_down = FPN([8, 16, 32, 64], [4, 8, 16, 32], channels=8)
    changed = _fpn_inputs()
    base = with_top_down(changed)[0]
    changed[3] = changed[3] + 1.0
    assert not torch.equal(base, with_top_down(changed)[0])


def test_fpn_finest_level_only():
    fpn = FPN([8, 16, 32, 64], [4, 8, 16, 32], channels=8, finest_only=True)
    outs = fpn(_fpn_inputs())
    assert fpn.strides == [4] and len(outs) == 1 and outs[0].shape[-1] == 32 and len(fpn.outputs) == 1


def test_fpn_r50_has_torchvisions_parameter_count(compose_cfg):
    # Untrained torchvision detection backbones use plain BatchNorm, so compare with norm=bn.
    model, _ = _model(compose_cfg, "fpn_r50", "model.backbone.norm=bn", num_classes=20)
    reference = torchvision.models.detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None,
                                                                     num_classes=21)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in reference.parameters())


@pytest.mark.parametrize("name", ["fpn_lite", "faster_rcnn_lite"])
def test_lite_two_stage_forward_contract(compose_cfg, name):
    torch.manual_seed(0)
    model, _ = _model(compose_cfg, name)
    images = torch.randn(2, 3, 320, 352)
    model.train()
    losses = model(images, _targets())
    assert set(losses) == {"rpn/obj", "rpn/loc", "roi/cls", "roi/loc"}
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2 and all(len(d["boxes"]) <= 100 and (d["labels"] < 3).all() for d in out)


@pytest.mark.parametrize("name,extra", [("fpn_lite", ()), ("faster_rcnn_lite", ()),
                                        ("fpn_lite", ("model.neck.lateral=false",)),
                                        ("fpn_lite", ("model.neck.top_down=false",))])
def test_two_stage_configs_train_a_step_and_evaluate(compose_cfg, tmp_path, name, extra):
    cfg = compose_cfg(*TINY, f"model={name}", "model.input_size=128", "trainer.max_iters=1", "trainer.eval_every=0",
                      *extra)
    results = Trainer(cfg, tmp_path).fit()
    assert 0.0 <= results["metrics"]["voc07_map50"] <= 1.0


def test_border_anchors_are_left_out_before_matching(compose_cfg):
    """A ground truth in the corner keeps a positive anchor inside the image (the paper's code
    matches inside anchors only), rather than losing its best, cross-border ones."""
    model, _ = _model(compose_cfg, "faster_rcnn_vgg16", num_classes=20)
    rpn = model.rpn.train()
    features = [torch.randn(1, 512, 38, 50)]
    anchors = rpn.priors([(38, 50)], (600, 800))
    inside = (anchors[:, :2] >= 0).all(dim=1) & (anchors[:, 2] <= 800) & (anchors[:, 3] <= 600)
    matched = rpn.matcher(anchors, torch.tensor([[0.0, 0.0, 100.0, 100.0]]), valid=inside)
    assert (matched[~inside] == IGNORE).all() and (matched[inside] == 0).any()
    _, losses = rpn(features, (600, 800), [(600, 800)], [{"boxes": torch.tensor([[0.0, 0.0, 100.0, 100.0]]),
                                                       "labels": torch.tensor([1])}])
    assert losses["loc"] > 0  # a positive anchor was sampled


def test_rpn_anchors_sit_on_the_stride_grid(compose_cfg):
    model, _ = _model(compose_cfg, "faster_rcnn_vgg16", num_classes=20)
    anchors = model.rpn.priors([(38, 50)], (600, 800))  # 600 / 16 = 37.5 cells: rounded up by the backbone
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    assert centres[:, 0].max() == 49.5 * 16 and centres[:, 1].max() == 37.5 * 16


def test_boxes_stay_inside_each_image_not_the_padded_batch(compose_cfg):
    # a keep-ratio batch pads the smaller image: its proposals and detections must not reach into the pad,
    # and the RPN's border rule applies at its own edges
    model, _ = _model(compose_cfg, "faster_rcnn_lite", "model.rpn.border=0.0")
    images, sizes = torch.randn(2, 3, 160, 192), [(160, 192), (96, 128)]
    seen = []
    matcher = model.rpn.matcher
    model.rpn.matcher = lambda anchors, boxes, ignore, valid: seen.append(valid) or matcher(anchors, boxes, ignore,
                                                                                            valid)
    model.train()
    model(images, _targets(), image_sizes=sizes)
    anchors = model.rpn.priors([(10, 12)], (160, 192))
    for valid, (h, w) in zip(seen, sizes):
        inside = (anchors[:, :2] >= 0).all(1) & (anchors[:, 2] <= w) & (anchors[:, 3] <= h)
        assert torch.equal(valid, inside)
    model.eval()
    with torch.no_grad():
        proposals = model.propose(images, image_sizes=sizes)
        detections = model(images, image_sizes=sizes)
    for boxes, (h, w) in zip([proposals[1], detections[1]["boxes"]], [sizes[1]] * 2):
        assert len(boxes) and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
    assert (model.propose(images)[1][:, 2] > 128).any()  # without sizes: the whole canvas, pad included


def test_roi_losses_take_each_rois_own_class_offsets_and_detections_decode_with_the_class_row():
    from types import SimpleNamespace

    from zoo.models.heads.roi_box_head import DEFAULT_TEST, RoIBoxHead
    from zoo.task.coders import DeltaXYWHCoder

    # Losses: RoI 0 is class 1 (label 2), RoI 1 background; 3 classes + background = 4 scores, 4 offset rows.
    scores, deltas = torch.zeros(2, 4), torch.zeros(2, 4, 4)
    deltas[0, 2, 0] = 0.5  # its own class row: smooth L1 0.125
    deltas[0, 1] = 9.0  # another class's row: never counted
    deltas[1] = 5.0  # a background RoI has no box loss
    head = SimpleNamespace(beta=1.0)
    cls, loc = RoIBoxHead._roi_losses(head, scores, deltas.view(2, 16), torch.tensor([2, 0]), torch.zeros(2, 4))
    assert cls.tolist() == pytest.approx([torch.log(torch.tensor(4.0)).item()] * 2)
    assert loc.tolist() == pytest.approx([0.125, 0.0])

    # Detections: only class 1 (label 2) scores; its row shifts the box by one width, class 0's row would not.
    settings = {k: v for k, v in DEFAULT_TEST.items() if k != "scoring"}  # the head keeps scoring apart
    head = SimpleNamespace(coder=DeltaXYWHCoder((1.0, 1.0, 1.0, 1.0)), test_cfg={**settings, "score_threshold": 0.5})
    probs = torch.tensor([[0.0, 0.0, 10.0, 0.0]]).softmax(dim=-1)[:, 1:]  # background left out
    offsets = torch.zeros(1, 4, 4)
    offsets[0, 2, 0] = 1.0
    found = RoIBoxHead._detections(head, probs, offsets.view(1, 16), [torch.tensor([[10.0, 10.0, 20.0, 20.0]])],
                                   [(100, 100)])[0]
    assert found["labels"].tolist() == [1] and found["boxes"].tolist() == [[20.0, 10.0, 30.0, 20.0]]


def test_spp_with_one_level_of_7_is_roi_pool_bin_for_bin():
    generator = torch.Generator().manual_seed(0)
    features = [torch.randn(2, 8, 40, 40, generator=generator)]
    rois = [torch.tensor([[3.0, 5.0, 120.0, 90.0], [40.0, 40.0, 60.0, 150.0]]), torch.tensor([[0.0, 0.0, 159.0, 159.0]])]
    spp = RoIPooler([4], type="spp", pyramid_levels=[7])(features, rois)
    pooled = RoIPooler([4], type="roi_pool", output_size=7)(features, rois)
    assert spp.shape == (3, 8, 1, 49) and torch.equal(spp.view(3, 8, 7, 7), pooled)


def test_spp_pyramid_bins_and_a_head_that_flattens_them(compose_cfg):
    from zoo.models.heads.box_features import ResNetC5Head, TwoFCHead

    pooler = RoIPooler([4, 8, 16, 32], type="spp", pyramid_levels=[1, 2, 3, 6])
    assert pooler.grid == (1, 50)
    features = [torch.randn(1, 4, 64 // 2**k, 64 // 2**k) for k in range(4)]
    pooled = pooler(features, [torch.tensor([[0.0, 0.0, 200.0, 200.0], [10.0, 10.0, 30.0, 40.0]])])
    assert pooled.shape == (2, 4, 1, 50)
    assert torch.equal(pooled[:, :, 0, 0], pooled[:, :, 0, 14:].amax(dim=2))  # the 1x1 bin is the 6x6 bins' max
    assert TwoFCHead(4, pooler.grid, dim=16)(pooled).shape == (2, 16)
    with pytest.raises(ValueError, match="square RoI map"):
        ResNetC5Head(1024, pooler.grid)
    with pytest.raises(ValueError, match="pyramid_levels .* go with type spp"):
        RoIPooler([4], type="roi_pool", pyramid_levels=[1, 2])
    cfg = compose_cfg("model=faster_rcnn_lite", "model.roi_head.pooler.type=spp",
                      "+model.roi_head.pooler.pyramid_levels=[1,2,4]")
    from zoo.config import model_node
    from zoo.models.detectors import build_detector

    model = build_detector(model_node(cfg.model), num_classes=3).eval()
    with torch.no_grad():
        found = model(torch.zeros(1, 3, 128, 128))
    assert set(found[0]) >= {"boxes", "scores", "labels"}
