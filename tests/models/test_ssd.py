import pytest
import torch
from hydra import compose, initialize_config_dir

from zoo.config.paths import CONF_DIR
from zoo.config import model_node
from zoo.models.detectors import build_detector
from zoo.components import load_components


def _model(name: str, num_classes: int = 3, **overrides):
    load_components()
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"model={name}", *[f"{k}={v}" for k, v in overrides.items()]])
    return build_detector(model_node(cfg.model), num_classes), cfg


def _targets(batch: int):
    return [{"boxes": torch.tensor([[20.0, 30.0, 120.0, 140.0], [200.0, 40.0, 260.0, 90.0]]),
             "labels": torch.tensor([0, 2]), "ignore": torch.tensor([False, False])} for _ in range(batch - 1)] + [
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long), "ignore": torch.zeros(0, dtype=bool)}]


def test_ssd_lite_forward_contract():
    torch.manual_seed(0)
    model, cfg = _model("ssd_lite")
    size = cfg.model.input_size
    images = torch.randn(2, 3, size, size)
    model.train()
    losses = model(images, _targets(2))
    assert set(losses) == {"ssd/cls", "ssd/loc"} and all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2
    for det in out:
        assert det["boxes"].shape[1] == 4 and det["scores"].shape == det["labels"].shape
        assert det["labels"].dtype == torch.long and (det["labels"] < 3).all()
        assert len(det["scores"]) <= 200 and (det["boxes"] >= 0).all() and (det["boxes"] <= size).all()


def test_ssd_lite_loss_decreases_on_one_batch():
    torch.manual_seed(0)
    model, cfg = _model("ssd_lite")
    images = torch.randn(2, 3, cfg.model.input_size, cfg.model.input_size)
    targets = _targets(2)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    history = []
    for _ in range(15):
        losses = model(images, targets)
        total = sum(losses.values())
        opt.zero_grad()
        total.backward()
        opt.step()
        history.append(total.item())
    assert all(torch.isfinite(torch.tensor(history)))
    assert history[-1] < 0.5 * history[0]


@pytest.mark.parametrize("name,size,count", [("ssd300", 300, 8732), ("ssd512", 512, 24564)])
def test_paper_ssd_prior_counts(name, size, count):
    model, cfg = _model(name, num_classes=20)
    assert cfg.model.input_size == size
    with torch.no_grad():
        feats = model.features(torch.zeros(1, 3, size, size))
    assert model.priors([f.shape[-2:] for f in feats], (size, size)).shape == (count, 4)
    scores, deltas = model.head(feats)
    assert scores.shape == (1, count, 21) and deltas.shape == (1, count, 4)


def test_test_settings_typo_fails():
    with pytest.raises(ValueError, match=r"model.test: unknown key\(s\) \['nms_treshold'\]"):
        _model("ssd_lite", **{"+model.test.nms_treshold": 0.5})


def test_nms_sees_the_decoded_boxes_and_only_its_survivors_are_clipped():
    from zoo.models.detectors.single_stage import DenseDetector
    from zoo.registry import CODERS

    class Dense(DenseDetector):
        def __init__(self):
            super().__init__()
            self.coder = CODERS.build({"type": "delta_xywh", "variances": [0.1, 0.2]})
            self.test_cfg = {"score_threshold": 0.01, "nms_threshold": 0.45, "max_detections": 10,
                             "topk_per_class": 10}

    # A box reaching far out of the 100 x 100 image overlaps the other by IoU 0.25 as decoded, but would be the
    # same box once clipped: the releases' detection output keeps both, clipped after NMS.
    anchors = torch.tensor([[[-150.0, 0, 50, 100], [0, 0, 50, 100]]])
    scores = torch.tensor([[[0.1, 0.9], [0.2, 0.8]]]).log()  # softmax gives back these probabilities
    out = Dense()._detect(scores, torch.zeros(1, 2, 4), anchors, [(100, 100)])[0]
    assert len(out["boxes"]) == 2
    assert out["boxes"].tolist() == [[0.0, 0.0, 50.0, 100.0]] * 2


def test_torchvision_ssd300_weights_load_into_ssd300_key_for_key():
    """zoo.models.imports.torchvision.SSD_KEYS (zoo-import's and the SSD benchmark's same-weights comparison): every
    torchvision tensor lands on the zoo parameter of the same role, and none is left over or missing (strict load)."""
    from torchvision.models.detection import ssd300_vgg16

    from zoo.models.imports.torchvision import SSD_KEYS

    load_components()
    torch.manual_seed(0)
    tv = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=21)
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        node = model_node(compose("train", overrides=["model=ssd300"]).model)
    zoo = build_detector(node, num_classes=20)
    zoo.load_state_dict(SSD_KEYS.rename(tv.state_dict(), "torchvision ssd300_vgg16"))
    assert torch.equal(zoo.state_dict()[next(iter(zoo.state_dict()))], tv.state_dict()["backbone.features.0.weight"])
