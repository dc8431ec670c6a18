from pathlib import Path

import pytest
import torch

from tests.conftest import TINY
from zoo.config.paths import CONF_DIR
from zoo.engine import trainer as trainer_module
from zoo.engine.preflight import check_components
from zoo.registry import ConfigError


@pytest.mark.parametrize("model", sorted(p.stem for p in Path(CONF_DIR, "model").glob("*.yaml")))
def test_every_shipped_model_passes_the_preflight(compose_cfg, model):
    cfg = compose_cfg(f"model={model}")
    before = torch.get_rng_state()
    check_components(cfg.model, cfg.evaluator, cfg.data.get("classes"))
    assert torch.equal(torch.get_rng_state(), before)  # the seeded model built next gets the weights it always did


def test_a_typo_in_the_model_or_evaluator_is_named(compose_cfg):
    cfg = compose_cfg("+model.head.num_anchorz=3")
    with pytest.raises(ConfigError, match=r"head 'ssd_head' got unknown key\(s\) \['num_anchorz'\]"):
        check_components(cfg.model, None)
    cfg = compose_cfg("+evaluator.voc07.iou_treshold=0.5")
    with pytest.raises(ConfigError, match=r"evaluator 'voc' got unknown key\(s\) \['iou_treshold'\]"):
        check_components(None, cfg.evaluator)


def test_weights_files_are_looked_for_but_not_read(compose_cfg, tmp_path):
    cfg = compose_cfg("model=ssd300", f"model.backbone.weights={tmp_path / 'missing.pt'}")
    with pytest.raises(FileNotFoundError, match="vgg16_reduced: weights file .*missing.pt' not found"):
        check_components(cfg.model, None)
    unreadable = tmp_path / "vgg16.pt"
    unreadable.write_bytes(b"not a state dict")  # reading it would fail: the preflight must not
    check_components(compose_cfg("model=ssd300", f"model.backbone.weights={unreadable}").model, None)


def test_the_trainer_rejects_a_bad_node_before_reading_data(compose_cfg, tmp_path, monkeypatch):
    def no_data(*args, **kwargs):
        raise AssertionError("the data was read before the config was checked")

    monkeypatch.setattr(trainer_module, "build_split", no_data)
    with pytest.raises(ConfigError, match="iou_treshold"):
        trainer_module.Trainer(compose_cfg(*TINY, "+evaluator.voc07.iou_treshold=0.5"), tmp_path)
    assert torch.empty(1).device.type == "cpu"  # the meta device does not outlive the check
