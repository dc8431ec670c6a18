import math

import pytest
import torch
from torch import nn

from tests.conftest import TINY
from zoo.config import model_node
from zoo.engine.trainer import Trainer
from zoo.models.detectors import build_detector
from zoo.models.detectors.refinedet import RefineSettings, apply_negative_filter, filtered_anchors
from zoo.models.losses.multibox import MultiBoxLoss
from zoo.models.necks.tcb import TransferConnectionBlock


def _model(compose_cfg, name="refinedet_lite", *overrides, num_classes=3):
    cfg = compose_cfg(f"model={name}", *overrides)
    return build_detector(model_node(cfg.model), num_classes), cfg


class _FixedHead(nn.Module):
    """Stands in for the ARM or ODM: returns the given (1, A, K) scores and (1, A, 4) deltas."""

    def __init__(self, scores, deltas):
        super().__init__()
        self.scores, self.deltas = scores, deltas

    def forward(self, features):
        return self.scores, self.deltas


def _anchors(model, size):
    with torch.no_grad():
        sources = model.extras(model.backbone(torch.zeros(1, 3, size, size)))
    return model.priors([s.shape[-2:] for s in sources], (size, size))


def _rig(model, size, arm_bg_prob=0.5, seed=0):
    """Replace the heads: one anchor near the image centre scores class 1 in the ODM; every
    anchor's ARM background probability is ``arm_bg_prob``; the offsets are random."""
    anchors = _anchors(model, size)
    count = anchors.shape[0]
    centre = ((anchors[:, :2] + anchors[:, 2:]) / 2 - size / 2).abs().sum(dim=1)
    chosen = int(((anchors[:, 2] - anchors[:, 0] == 64) & (anchors[:, 3] - anchors[:, 1] == 64)).float()
                 .mul(-1e6).add(centre).argmin())
    gen = torch.Generator().manual_seed(seed)
    arm_deltas = torch.randn(1, count, 4, generator=gen)
    odm_deltas = torch.randn(1, count, 4, generator=gen)
    odm_scores = torch.zeros(1, count, model.num_classes + 1)
    odm_scores[..., 0] = 10.0
    odm_scores[0, chosen] = torch.tensor([0.0, 10.0, 0.0, 0.0])
    logit = math.log(arm_bg_prob / (1 - arm_bg_prob))
    arm_scores = torch.stack([torch.full((1, count), logit), torch.zeros(1, count)], dim=-1)
    model.arm = _FixedHead(arm_scores, arm_deltas)
    model.odm = _FixedHead(odm_scores, odm_deltas)
    return anchors, chosen, arm_deltas[0, chosen], odm_deltas[0, chosen]


def _decode_by_hand(anchor, deltas, variances=(0.1, 0.2)):
    x1, y1, x2, y2 = anchor.tolist()
    w, h, cx, cy = x2 - x1, y2 - y1, (x1 + x2) / 2, (y1 + y2) / 2
    dx, dy, dw, dh = deltas.tolist()
    cx, cy = cx + dx * variances[0] * w, cy + dy * variances[0] * h
    w, h = w * math.exp(dw * variances[1]), h * math.exp(dh * variances[1])
    return torch.tensor([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


@pytest.mark.parametrize("cascade", [True, False])
def test_cascaded_decoding_composes_the_two_offsets(compose_cfg, cascade):
    model, _ = _model(compose_cfg, "refinedet_lite", f"model.refine.cascade={str(cascade).lower()}")
    model.eval()
    anchors, chosen, arm_delta, odm_delta = _rig(model, 320)
    start = _decode_by_hand(anchors[chosen], arm_delta) if cascade else anchors[chosen]
    expected = _decode_by_hand(start, odm_delta)
    with torch.no_grad():
        det = model(torch.zeros(1, 3, 320, 320))[0]
    assert det["labels"].tolist() == [0] and det["scores"][0] > 0.99
    torch.testing.assert_close(det["boxes"][0], expected.clamp(0, 320), rtol=0, atol=1e-3)


@pytest.mark.parametrize("bg_prob,kept", [(0.995, False), (0.985, True)])
def test_inference_drops_the_filtered_anchors(compose_cfg, bg_prob, kept):
    model, _ = _model(compose_cfg)
    model.eval()
    _rig(model, 320, arm_bg_prob=bg_prob)
    with torch.no_grad():
        det = model(torch.zeros(1, 3, 320, 320))[0]
    assert (len(det["scores"]) == 1) == kept
    model.refine = RefineSettings(filter_negatives=False)
    with torch.no_grad():
        assert len(model(torch.zeros(1, 3, 320, 320))[0]["scores"]) == 1


def test_filter_marks_exactly_the_anchors_above_theta():
    bg = torch.tensor([[0.5, 0.985, 0.992, 0.999, 0.2]])
    scores = torch.stack([bg.log(), (1 - bg).log()], dim=-1)  # softmax gives back bg
    assert filtered_anchors(scores, 0.99).tolist() == [[False, False, True, True, False]]


def test_authors_semantics_only_leave_mining():
    labels = torch.tensor([[2, 0, 1, 0, -1, 0]])
    filtered = torch.tensor([[True, True, False, False, True, True]])
    out, exclude = apply_negative_filter(labels, filtered, "authors")
    assert torch.equal(out, labels) and torch.equal(exclude, filtered)


def test_port_semantics_drop_filtered_positives():
    labels = torch.tensor([[2, 0, 1, 0, -1, 0]])
    filtered = torch.tensor([[True, True, False, False, True, True]])
    out, exclude = apply_negative_filter(labels, filtered, "port")
    assert out.tolist() == [[-1, 0, 1, 0, -1, 0]] and exclude is None


@pytest.mark.parametrize("mode", ["authors", "port"])
def test_filtered_anchors_never_count_in_the_odm_loss_as_ruled(compose_cfg, mode):
    """Every anchor filtered (ARM background 0.995): authors' rule keeps the positives' loss and
    mines no negatives; the port's rule leaves no positive, so the ODM loss is zero."""
    model, _ = _model(compose_cfg, "refinedet_lite", f"model.refine.filter_mode={mode}")
    model.train()
    _rig(model, 320, arm_bg_prob=0.995)
    targets = [{"boxes": torch.tensor([[100.0, 100.0, 180.0, 170.0]]), "labels": torch.tensor([1])}]
    losses = model(torch.zeros(1, 3, 320, 320), targets)
    if mode == "port":
        assert losses["odm/cls"] == 0 and losses["odm/loc"] == 0
    else:
        assert losses["odm/cls"] > 0 and losses["odm/loc"] > 0
        # Only positives contribute: the loss equals the positives' CE alone, what an unfiltered model that mines
        # no negatives at all gives on the same positives.
        model.refine = RefineSettings(filter_negatives=False)
        unfiltered = model(torch.zeros(1, 3, 320, 320), targets)
        assert unfiltered["odm/cls"] > losses["odm/cls"]
        model.loss = MultiBoxLoss(sampler={"type": "hard_negative", "neg_pos_ratio": 0.0})
        positives_only = model(torch.zeros(1, 3, 320, 320), targets)
        assert losses["odm/cls"].item() == pytest.approx(positives_only["odm/cls"].item(), rel=1e-6)
    assert losses["arm/cls"] > 0


@pytest.mark.parametrize("sizes", [[(40, 40), (20, 20), (10, 10), (5, 5)], [(64, 64), (32, 32), (16, 16), (8, 8)],
                                   [(38, 38), (19, 19), (10, 10), (5, 5)]])
def test_tcb_keeps_every_level_size_at_256_channels(sizes):
    tcb = TransferConnectionBlock([512, 512, 1024, 512], [8, 16, 32, 64])
    feats = [torch.randn(1, c, *s) for c, s in zip([512, 512, 1024, 512], sizes)]
    outs = tcb(feats)
    assert tcb.out_channels == [256] * 4
    assert [tuple(o.shape) for o in outs] == [(1, 256, *s) for s in sizes]


def test_tcb_passes_deeper_context_down():
    tcb = TransferConnectionBlock([8, 8], [8, 16], channels=4).eval()
    feats = [torch.randn(1, 8, 8, 8), torch.randn(1, 8, 4, 4)]
    base = tcb(feats)[0]
    feats[1] = feats[1] + 1.0
    assert not torch.allclose(base, tcb(feats)[0])  # the shallow output depends on the deeper input


def test_without_tcb_the_odm_reads_the_sources(compose_cfg):
    model, _ = _model(compose_cfg, "refinedet320", "model/neck=none", num_classes=20)
    assert type(model.neck).__name__ == "IdentityNeck"
    assert [c.in_channels for c in model.odm.cls] == [512, 512, 1024, 512]
    assert [c.in_channels for c in model.arm.cls] == [512, 512, 1024, 512]


@pytest.mark.parametrize("name,count", [("refinedet320", 6375), ("refinedet512", 16320), ("refinedet_lite", 6375)])
def test_anchor_counts(compose_cfg, name, count):
    model, cfg = _model(compose_cfg, name, num_classes=20)
    size = cfg.model.input_size
    assert _anchors(model, size).shape == (count, 4)
    with torch.no_grad():
        sources = model.extras(model.backbone(torch.zeros(1, 3, size, size)))
        arm_scores, arm_deltas = model.arm(sources)
        odm_scores, odm_deltas = model.odm(model.neck(sources))
    assert arm_scores.shape == (1, count, 2) and odm_scores.shape == (1, count, 21)
    assert arm_deltas.shape == odm_deltas.shape == (1, count, 4)


ABLATIONS = {
    "full": (),
    "no_filter": ("model.refine.filter_negatives=false",),
    "no_cascade": ("model.refine.filter_negatives=false", "model.refine.cascade=false"),
    "no_tcb": ("model.refine.filter_negatives=false", "model.refine.cascade=false", "model/neck=none"),
    "no_arm": ("model.refine.filter_negatives=false", "model.refine.cascade=false", "model/neck=none",
               "model.refine.arm=false"),
    "port_filter": ("model.refine.filter_mode=port",),
}


@pytest.mark.parametrize("ablation", sorted(ABLATIONS))
def test_each_ablation_trains_a_step_and_evaluates(compose_cfg, tmp_path, ablation):
    cfg = compose_cfg(*TINY, "model=refinedet_lite", "model.input_size=128", "trainer.max_iters=1",
                      "trainer.eval_every=0", *ABLATIONS[ablation])
    results = Trainer(cfg, tmp_path).fit()
    assert 0.0 <= results["metrics"]["voc07_map50"] <= 1.0
    logged = (tmp_path / "metrics.jsonl").read_text()
    assert ("arm/cls" in logged) == (ablation != "no_arm") and "odm/loc" in logged


def test_no_arm_asks_for_the_dependent_switches_off(compose_cfg):
    with pytest.raises(ValueError, match="cascade=false and model.refine.filter_negatives=false"):
        _model(compose_cfg, "refinedet_lite", "model.refine.arm=false")


@pytest.mark.parametrize("override,message", [("+model.refine.thetta=0.9", "unknown key"),
                                              ("model.refine.filter_mode=mine", "filter_mode must be one of"),
                                              ("model.refine.theta=1.5", "theta must lie")])
def test_refine_settings_are_checked(compose_cfg, override, message):
    with pytest.raises(ValueError, match=message):
        _model(compose_cfg, "refinedet_lite", override)
