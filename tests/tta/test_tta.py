"""Test-time augmentation: the merges on hand cases and against a sequential reference, the views'
mapping back to the batch's pixels, the size rules, and every lite detector behind the wrapper."""
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from torch import nn
from torchvision.ops import box_iou

from tests.conftest import TINY
from zoo.config.paths import CONF_DIR
from zoo.config import model_node
from zoo.engine.trainer import Trainer
from zoo.models.detectors import build_detector
from zoo.registry import MERGES
from zoo.tta import TTADetector, build_tta
from zoo.tta.wrapper import View, parse_tta


def test_box_voting_averages_a_cluster_by_score_and_keeps_its_best_score():
    boxes = torch.tensor([[0.0, 0, 10, 10], [2.0, 0, 12, 10], [0.0, 0, 10, 10], [50.0, 50, 60, 60]])
    scores = torch.tensor([0.9, 0.3, 0.8, 0.5])
    labels = torch.tensor([0, 0, 1, 0])  # box 2 is another class: never joins box 0
    out = MERGES.build({"type": "box_voting", "iou_threshold": 0.45})(boxes, scores, labels)
    # cluster of box 0: boxes 0 and 1 (IoU 8/12 = 0.67), x = (0.9 * 0 + 0.3 * 2) / 1.2 = 0.5
    assert out["scores"].tolist() == pytest.approx([0.9, 0.8, 0.5])
    assert torch.allclose(out["boxes"][0], torch.tensor([0.5, 0, 10.5, 10]))
    assert torch.equal(out["boxes"][1:], boxes[[2, 3]]) and out["labels"].tolist() == [0, 1, 0]


def test_nms_and_soft_nms_merges_suppress_across_views_within_a_class():
    # the same object from two views (IoU 8/12), the second view's copy of another class, and a lone box
    boxes = torch.tensor([[0.0, 0, 10, 10], [2.0, 0, 12, 10], [2.0, 0, 12, 10], [50.0, 50, 60, 60]])
    scores, labels = torch.tensor([0.9, 0.7, 0.6, 0.5]), torch.tensor([0, 0, 1, 0])
    out = MERGES.build({"type": "nms", "iou_threshold": 0.45})(boxes, scores, labels)
    assert out["scores"].tolist() == pytest.approx([0.9, 0.6, 0.5]) and out["labels"].tolist() == [0, 1, 0]
    soft = MERGES.build({"type": "soft_nms", "method": "linear", "iou_threshold": 0.45})(boxes, scores, labels)
    assert soft["scores"].tolist() == pytest.approx([0.9, 0.6, 0.5, 0.7 * (1 - 8 / 12)])  # decayed, not dropped
    voted = MERGES.build({"type": "soft_nms", "method": "linear", "iou_threshold": 0.45, "merge_exponent": 1.0})(
        boxes, scores, labels)  # CornerNet's multi-scale merge: the kept box moves toward what it decayed
    assert 0.0 < voted["boxes"][0, 0].item() < 2.0 and voted["boxes"][0, 2].item() > 10.0


def test_soft_box_voting_also_keeps_decayed_members():
    boxes = torch.tensor([[0.0, 0, 10, 10], [2.0, 0, 12, 10]])
    out = MERGES.build({"type": "soft_box_voting", "iou_threshold": 0.45, "score_threshold": 0.01})(
        boxes, torch.tensor([0.9, 0.3]), torch.tensor([0, 0]))
    iou = 8 / 12
    assert out["scores"].tolist() == pytest.approx([0.9, 0.3 * (1 - iou)])
    assert torch.equal(out["boxes"][1], boxes[1])


def _sequential_box_voting(boxes, scores, labels, threshold):
    """Box by box, the way the multi-scale test's reference code reads."""
    order = scores.argsort(descending=True).tolist()
    out = []
    while order:
        head = order[0]
        iou = box_iou(boxes[head:head + 1], boxes[order])[0]
        same = labels[order] == labels[head]
        members = [i for i, o, s in zip(order, iou.tolist(), same.tolist()) if s and o > threshold]
        w = scores[members]
        out.append(((boxes[members] * w[:, None]).sum(0) / w.sum(), scores[head], labels[head]))
        order = [i for i in order if i not in members]
    return out


def test_box_voting_equals_the_sequential_reference():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(60, 2, generator=g) * 80
    boxes = torch.cat([xy, xy + 10 + torch.rand(60, 2, generator=g) * 30], 1)
    scores, labels = torch.rand(60, generator=g), torch.randint(0, 3, (60,), generator=g)
    out = MERGES.build({"type": "box_voting", "iou_threshold": 0.45})(boxes, scores, labels)
    expected = _sequential_box_voting(boxes, scores, labels, 0.45)
    assert len(expected) == len(out["boxes"])
    for (box, score, label), got_box, got_score, got_label in zip(expected, out["boxes"], out["scores"], out["labels"]):
        assert torch.allclose(got_box, box, atol=1e-5) and got_score == score and got_label == label


class BrightBoxDetector(nn.Module):
    """Finds the bright rectangle in channel 0: its box in the input's pixels, score 1, class 0."""

    def forward(self, images, image_sizes=None):
        out = []
        for image in images:
            ys, xs = torch.nonzero(image[0] > 0.5, as_tuple=True)
            box = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()[None]
            out.append({"boxes": box, "scores": torch.ones(1), "labels": torch.zeros(1, dtype=torch.long)})
        return out


@pytest.mark.parametrize("view", [{"scale": 1.0, "flip": True}, {"scale": 2.0}, {"scale": 0.5, "flip": True},
                                  {"scale": [1.0, 2.0]}, {"size": [32, 128]}])
def test_each_view_maps_its_boxes_back_to_the_batch(view):
    images = torch.zeros(2, 3, 64, 64)
    images[0, :, 8:24, 20:52] = 1.0
    images[1, :, 40:60, 2:10] = 1.0
    tta = TTADetector(BrightBoxDetector(), [View.from_config(view, 0)], {"type": "nms"}).eval()
    got = [o["boxes"][0] for o in tta(images)]
    assert torch.allclose(got[0], torch.tensor([20.0, 8, 52, 24]), atol=1.0)
    assert torch.allclose(got[1], torch.tensor([2.0, 40, 10, 60]), atol=1.0)


def test_size_rules_drop_boxes_outside_the_view_range():
    images = torch.zeros(1, 3, 64, 64)
    images[0, :, 8:24, 20:52] = 1.0  # 32 x 16
    keep_large = View.from_config({"scale": 1.0, "keep_larger_side_above": 40}, 0)
    keep_small = View.from_config({"scale": 1.0, "keep_smaller_side_below": 20}, 1)
    assert len(TTADetector(BrightBoxDetector(), [keep_large], {"type": "nms"}).eval()(images)[0]["boxes"]) == 0
    assert len(TTADetector(BrightBoxDetector(), [keep_small], {"type": "nms"}).eval()(images)[0]["boxes"]) == 1


def _eval_cfg(*overrides):
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        return compose(config_name="eval", overrides=["checkpoint=none.pt", *overrides])


def test_bad_tta_settings_are_named():
    with pytest.raises(ValueError, match=r"tta.views\[0\]: unknown key"):
        build_tta(nn.Identity(), {"views": [{"scale": 1.0, "flipp": True}]})
    with pytest.raises(ValueError, match="exactly one of 'scale'"):
        build_tta(nn.Identity(), {"views": [{"scale": 1.0, "size": [3, 3]}]})
    with pytest.raises(ValueError, match="inference only"):
        TTADetector(BrightBoxDetector(), [View(scale=1.0)], {"type": "nms"}).train()(torch.zeros(1, 3, 8, 8))
    assert isinstance(build_tta(nn.Identity(), None), nn.Identity)


@pytest.mark.parametrize("node, message", [
    ({"name": "flip", "view": [{"scale": 1.0}]}, r"unknown key\(s\) \['view'\]"),  # a typo never means 'no TTA'
    ({"name": "flip"}, "'views' must be a non-empty list"),
    ({"views": []}, "'views' must be a non-empty list"),
    ({"views": {"a": {"scale": 1.0}}}, "'views' must be a non-empty list"),
    ("flip", "expected a mapping with 'views'"),
    ({"views": [1.0]}, r"tta.views\[0\]: a view is a mapping"),
    ({"views": [{"size": 512}]}, r"tta.views\[0\]: size must be \[h, w\]"),
    ({"views": [{"scale": "big"}]}, r"tta.views\[0\]: scale must be a positive ratio"),
    ({"views": [{"scale": 1.0}], "max_detections": -1}, "max_detections must be an integer >= 1"),
    ({"views": [{"scale": 1.0}], "max_detections": None}, "max_detections must be an integer >= 1"),
    ({"views": [{"scale": 1.0}], "merge": {"type": "soft_nms", "method": "Gaussian"}}, "unknown soft-NMS method"),
])
def test_a_malformed_tta_node_fails_when_built_naming_the_key(node, message):
    with pytest.raises(ValueError, match=message):
        build_tta(nn.Identity(), node)


def test_a_one_number_scale_list_is_that_ratio():
    view = View.from_config({"scale": [1.5]}, 0)
    assert view.scale == 1.5 and view.shape(10, 20) == (15, 30)


@pytest.mark.parametrize("name", ["ssd_lite", "refinedet_lite", "fpn_lite", "faster_rcnn_lite", "cornernet_lite"])
@pytest.mark.parametrize("recipe", ["flip", "multiscale"])
def test_every_detector_works_behind_the_wrapper(compose_cfg, name, recipe):
    cfg = compose_cfg(f"model={name}")
    tta_cfg = OmegaConf.to_container(_eval_cfg(f"tta={recipe}").tta)
    torch.manual_seed(0)
    model = build_tta(build_detector(model_node(cfg.model), 3), tta_cfg).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 400, 400))  # ssd_lite needs 320 px after the 0.8x view
    assert len(out) == 2
    for d in out:
        assert d["boxes"].shape[1:] == (4,) and len(d["boxes"]) == len(d["scores"]) == len(d["labels"]) <= 200
        assert (d["scores"][:-1] >= d["scores"][1:]).all()


def test_a_view_below_the_smallest_input_is_refused_by_its_own_error(compose_cfg):
    from zoo.models.layers import InputTooSmallError

    cfg = compose_cfg("model=ssd_lite")
    tta_cfg = OmegaConf.to_container(_eval_cfg("tta=multiscale").tta)
    model = build_tta(build_detector(model_node(cfg.model), 3), tta_cfg).eval()
    with torch.no_grad(), pytest.raises(InputTooSmallError, match="extra level 2 gets a \\(2, 2\\) map"):
        model(torch.randn(1, 3, 320, 320))  # the 0.8x view is 256 px


def test_zoo_eval_with_flip_on_a_checkpoint(compose_cfg, tmp_path):
    from zoo.apis.evaluate import evaluate_checkpoint

    Trainer(compose_cfg(*TINY, "trainer.max_iters=2", "trainer.eval_every=0"), tmp_path).fit()
    cfg = _eval_cfg(f"checkpoint={tmp_path / 'checkpoints' / 'last.pt'}", "device=cpu", "batch_size=4",
                    "plots=false", "tta=flip")
    results = evaluate_checkpoint(cfg)
    assert results["tta"] == "flip" and 0.0 <= results["metrics"]["voc07_map50"] <= 1.0


def test_box_voting_keeps_degenerate_boxes_in_their_own_cluster():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1.0, 0, 11, 10], [5.0, 5, 5, 5]])  # the last has zero area
    out = MERGES.build({"type": "box_voting"})(boxes, torch.tensor([0.9, 0.5, 0.8]), torch.tensor([0, 0, 0]))
    assert torch.equal(out["boxes"][1], boxes[2]) and out["scores"].tolist() == pytest.approx([0.9, 0.8])
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        MERGES.build({"type": "box_voting", "iou_threshold": 1.0})


class PaddingWatcher(nn.Module):
    """Records what each view shows of every image's padding, and reports one box inside the padding
    (right of the image) beside the bright rectangle, as a detector blind to ``image_sizes`` might."""

    def __init__(self):
        super().__init__()
        self.padding_seen, self.sizes_seen = [], []

    def forward(self, images, image_sizes=None):
        self.sizes_seen.append(image_sizes)
        out = BrightBoxDetector()(images)
        for d, image, (_, w) in zip(out, images, image_sizes):
            self.padding_seen.append(float(image[:, :, w:].abs().sum()))
            d["boxes"] = torch.cat([d["boxes"], torch.tensor([[w + 1.0, 0, w + 5.0, 8]])])
            d["scores"], d["labels"] = torch.ones(2), torch.zeros(2, dtype=torch.long)
        return out


@pytest.mark.parametrize("view", [{"scale": 1.0, "flip": True}, {"scale": 0.5, "flip": True}, {"scale": 2.0}])
def test_a_narrower_image_keeps_its_padding_on_the_right_and_no_box_from_it(view):
    images = torch.zeros(2, 3, 64, 64)
    images[0, :, 8:24, 20:52] = 1.0  # fills the canvas
    images[1, :, 40:60, 2:10] = 1.0  # 40 px wide, padded to 64
    watcher = PaddingWatcher()
    tta = TTADetector(watcher, [View.from_config(view, 0)], {"type": "nms"}).eval()
    got = tta(images, image_sizes=[(64, 64), (64, 40)])
    scale = view["scale"]
    assert watcher.sizes_seen == [[(round(64 * scale), round(64 * scale)), (round(64 * scale), round(40 * scale))]]
    assert watcher.padding_seen[1] == 0.0  # the mirror did not move the padding to the left
    assert [len(d["boxes"]) for d in got] == [1, 1]  # the padding's box is clipped to nothing and dropped
    assert torch.allclose(got[1]["boxes"][0], torch.tensor([2.0, 40, 10, 60]), atol=1.0)


def test_a_size_view_is_refused_for_images_smaller_than_the_batch():
    tta = TTADetector(BrightBoxDetector(), [View.from_config({"size": [32, 32]}, 0)], {"type": "nms"}).eval()
    images = torch.zeros(2, 3, 64, 64)
    images[:, :, 8:24, 8:24] = 1.0
    assert len(tta(images, image_sizes=[(64, 64), (64, 64)])) == 2
    with pytest.raises(ValueError, match=r"tta.views\[0\]: a 'size' view stretches the padded batch"):
        tta(images, image_sizes=[(64, 64), (64, 40)])


class SettingsWatcher(BrightBoxDetector):
    def __init__(self):
        super().__init__()
        self.test_cfg = {"nms": "gaussian", "max_detections": 100}
        self.seen = []

    def forward(self, images, image_sizes=None):
        self.seen.append(dict(self.test_cfg))
        return super().forward(images)


def test_view_test_overrides_the_detectors_settings_while_the_views_run():
    images = torch.zeros(1, 3, 32, 32)
    images[0, :, 4:12, 4:12] = 1.0
    model = SettingsWatcher()
    views = [View(scale=1.0), View(scale=1.0, flip=True)]
    TTADetector(model, views, {"type": "nms"}, view_test={"nms": "none"}).eval()(images)
    assert model.seen == [{"nms": "none", "max_detections": 100}] * 2
    assert model.test_cfg == {"nms": "gaussian", "max_detections": 100}  # restored
    with pytest.raises(ValueError, match=r"tta.view_test: unknown key\(s\) \['nmss'\] for SettingsWatcher"):
        TTADetector(model, views, {"type": "nms"}, view_test={"nmss": "none"})
    with pytest.raises(ValueError, match="BrightBoxDetector has no test settings"):
        TTADetector(BrightBoxDetector(), views, {"type": "nms"}, view_test={"nms": "none"})
    with pytest.raises(ValueError, match="tta.view_test must map"):
        build_tta(model, {"views": [{"scale": 1.0}], "view_test": "none"})


def test_cornernet_flip_suppresses_once_over_both_views_pairs(compose_cfg):
    from zoo.ops.soft_nms import soft_nms

    cfg = compose_cfg("model=cornernet_lite", "model.input_size=128")
    torch.manual_seed(0)
    model = build_detector(model_node(cfg.model), 3).eval()
    tta_cfg = OmegaConf.to_container(_eval_cfg("tta=cornernet_flip").tta)
    images = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        got = build_tta(model, tta_cfg).eval()(images)
        model.test_cfg = {**model.test_cfg, "nms": "none", "max_detections": 1000}
        plain, mirrored = model(images), model(images.flip(-1))
    for d, a, b in zip(got, plain, mirrored):
        boxes_b = torch.stack([128 - b["boxes"][:, 2], b["boxes"][:, 1], 128 - b["boxes"][:, 0], b["boxes"][:, 3]], 1)
        boxes = torch.cat([a["boxes"], boxes_b])
        nonempty = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        scores, labels = torch.cat([a["scores"], b["scores"]])[nonempty], torch.cat([a["labels"], b["labels"]])[nonempty]
        keep, kept_scores = soft_nms(boxes[nonempty], scores, labels, method="gaussian", sigma=0.5, max_detections=100)
        assert len(a["scores"]) and len(d["scores"]) == len(kept_scores) <= 100
        assert torch.allclose(d["scores"], kept_scores) and torch.equal(d["labels"], labels[keep])


def test_every_tta_file_parses_and_the_refinedet_recipes_have_the_authors_views():
    import os

    from zoo.config.paths import CONF_DIR

    for file in sorted(os.listdir(os.path.join(CONF_DIR, "tta"))):
        parse_tta(OmegaConf.to_container(_eval_cfg(f"tta={file[:-5]}").tta))
    views = parse_tta(OmegaConf.to_container(_eval_cfg("tta=refinedet320_ms").tta))[0]
    # each of the authors' 8 views with its mirror: 1x, the 0.6 aspect view, 0.6x, 1.2x ... 2.2x
    assert len(views) == 16 and sum(v.flip for v in views) == 8
    assert {(v.scale, v.keep_larger_side_above, v.keep_smaller_side_below) for v in views} == {
        (1.0, None, None), ((0.6, 1.0), None, None), (0.6, 32, None), (1.2, None, 160), (1.4, None, 128),
        (1.6, None, 96), (1.8, None, 64), (2.2, None, 32)}
    views512 = parse_tta(OmegaConf.to_container(_eval_cfg("tta=refinedet512_ms").tta))[0]
    assert {(v.scale, v.keep_smaller_side_below) for v in views512} == {
        (1.0, None), ((0.75, 1.0), None), (0.5, None), (0.75, None), (1.75, 128), (1.5, 192)}


class ProposalEcho(nn.Module):
    """Detects its proposals: each one a box of score 1, class 0; keeps what each view gave it."""

    def __init__(self):
        super().__init__()
        self.given = []

    def forward(self, images, image_sizes=None, proposals=None):
        self.given.append([p.clone() for p in proposals])
        return [{"boxes": p, "scores": torch.ones(len(p)), "labels": torch.zeros(len(p), dtype=torch.long)}
                for p in proposals]


def test_a_mirrored_view_mirrors_each_images_proposals_within_its_own_width():
    echo = ProposalEcho()
    tta = TTADetector(echo, [View.from_config({"scale": 1.0, "flip": True}, 0)], {"type": "nms"}).eval()
    tta(torch.zeros(2, 3, 64, 64), image_sizes=[(64, 64), (64, 40)],
        proposals=[torch.tensor([[20.0, 8, 52, 24]]), torch.tensor([[2.0, 40, 10, 60]])])
    assert echo.given[0][0].tolist() == [[12.0, 8, 44, 24]] and echo.given[0][1].tolist() == [[30.0, 40, 38, 60]]


@pytest.mark.parametrize("view", [{"scale": 1.0, "flip": True}, {"scale": 2.0}, {"scale": 0.5, "flip": True}])
def test_given_proposals_go_into_each_view_as_its_image_does(view):
    proposals = [torch.tensor([[20.0, 8, 52, 24], [0, 0, 10, 30]]), torch.tensor([[2.0, 40, 10, 60]])]
    tta = TTADetector(ProposalEcho(), [View.from_config(view, 0)], {"type": "nms", "iou_threshold": 1.0}).eval()
    got = tta(torch.zeros(2, 3, 64, 64), proposals=proposals)
    for found, given in zip(got, proposals):  # mapped into the view and back: where they were
        order = found["boxes"][:, 0].argsort(descending=True)
        assert torch.allclose(found["boxes"][order], given[given[:, 0].argsort(descending=True)], atol=1e-4)


def test_fast_rcnn_is_scored_with_flip_on_its_proposals(compose_cfg, tmp_path):
    from zoo.apis.evaluate import evaluate_checkpoint
    from zoo.config.compose import compose_config

    Trainer(compose_cfg(*TINY, "model=fast_rcnn_lite", "trainer.max_iters=1", "trainer.eval_every=0",
                        "data.eval_images=2"), tmp_path).fit()
    cfg = compose_config("eval", [f"checkpoint={tmp_path / 'checkpoints' / 'last.pt'}", "tta=flip", "plots=false",
                                  "progress=false", "split=val"])
    assert 0.0 <= evaluate_checkpoint(cfg)["metrics"]["voc07_map50"] <= 1.0
