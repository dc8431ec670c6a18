"""model.init_from: a new run starts from a checkpoint's fitting tensors; class-dependent ones start afresh when the
classes differ; the summary says what was loaded, re-initialised and skipped."""
from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf, open_dict

from tests.conftest import TINY
from zoo.config import model_node
from zoo.engine.checkpoint import save_checkpoint
from zoo.engine.init_from import class_dependent, init_from
from zoo.data.synthetic import SHAPE_NAMES
from zoo.engine.trainer import Trainer
from zoo.models.detectors import build_detector


def checkpoint_for(cfg, class_names, path, **model_overrides):
    """A checkpoint as zoo-train or zoo-import writes one: random weights of cfg's model for ``class_names``."""
    stored = cfg.copy()
    with open_dict(stored):
        stored.model.update(model_overrides)
    torch.manual_seed(1)
    model = build_detector(model_node(stored.model), num_classes=len(class_names))
    save_checkpoint({"model": model.state_dict(), "config": OmegaConf.to_yaml(stored, resolve=True),
                     "class_names": list(class_names)}, path)
    return model.state_dict()


def test_same_classes_load_every_tensor(compose_cfg, tmp_path):
    cfg = compose_cfg(*TINY, "trainer.max_iters=1")
    source = checkpoint_for(cfg, SHAPE_NAMES, tmp_path / "source.pt")
    trainer = Trainer(compose_cfg(*TINY, "trainer.max_iters=1", f"model.init_from={tmp_path / 'source.pt'}"),
                      tmp_path / "run")
    assert trainer.class_names == list(SHAPE_NAMES)
    assert all(torch.equal(v.cpu(), source[k]) for k, v in trainer.model.state_dict().items())


def test_other_classes_reinitialise_the_class_dependent_tensors_only(compose_cfg, tmp_path):
    cfg = compose_cfg(*TINY)
    ours = list(SHAPE_NAMES)
    source = checkpoint_for(cfg, [f"class{i}" for i in range(80)], tmp_path / "coco.pt")
    torch.manual_seed(2)
    model = build_detector(model_node(cfg.model), num_classes=len(ours))
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    lines = init_from(model, tmp_path / "coco.pt", model_node(cfg.model), ours, cfg.model)
    by_class = class_dependent(model_node(cfg.model), len(ours))
    assert by_class and all(k.startswith("head.cls") for k in by_class)
    state = model.state_dict()
    assert all(torch.equal(state[k], fresh[k]) for k in by_class)
    assert all(torch.equal(state[k], source[k]) for k in state if k not in by_class)
    assert lines[0] == f"model.init_from={tmp_path / 'coco.pt'}: loaded {len(state) - len(by_class)} of {len(state)} tensors"
    assert f"re-initialised {len(by_class)} class-dependent" in lines[1] and f"80 classes are not this run's {len(ours)}" in lines[1]


def test_settings_the_checkpoint_was_made_with_are_listed(compose_cfg, tmp_path):
    cfg = compose_cfg(*TINY)
    checkpoint_for(cfg, ["a", "b", "c"], tmp_path / "imported.pt", input_mean=[123.0, 117.0, 104.0])
    model = build_detector(model_node(cfg.model), num_classes=3)
    lines = init_from(model, tmp_path / "imported.pt", model_node(cfg.model), ["a", "b", "c"], cfg.model)
    assert any("model.input_mean: [123.0, 117.0, 104.0] there, unset here" in line for line in lines)


def test_a_missing_checkpoint_is_named(compose_cfg, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        Trainer(compose_cfg(*TINY, f"model.init_from={tmp_path / 'nothing.pt'}"), tmp_path / "run")
