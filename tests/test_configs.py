"""Every model and data config composes and instantiates; typos fail at compose time."""
from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError

from zoo.config.paths import CONF_DIR
from zoo.config import model_node
from zoo.models.detectors import build_detector

MODELS = sorted(p.stem for p in Path(CONF_DIR, "model").glob("*.yaml"))
DATA = sorted(p.stem for p in Path(CONF_DIR, "data").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in Path(CONF_DIR, "experiment").glob("*.yaml"))


@pytest.mark.parametrize("name", MODELS)
def test_every_model_config_builds_and_runs(compose_cfg, name):
    # Two-stage models score 100 proposals, not their 300-1000: the RoI head is the same code for any number,
    # and C4's ResNet stage 5 on 1000 RoIs of an 800-px image takes a minute on 2 CPU cores.
    cfg = compose_cfg(f"model={name}", *(["model.rpn.test.post_nms_top_n=100"] if name.startswith(("faster", "fpn"))
                                         else []))
    model = build_detector(model_node(cfg.model), num_classes=3).eval()
    size = cfg.model.input_size
    given = {"proposals": [torch.tensor([[0.0, 0.0, size / 2, size / 2], [10.0, 20.0, size - 1, size - 1]])]} \
        if cfg.model.type == "fast_rcnn" else {}  # Fast R-CNN's RoIs come with the data
    with torch.no_grad():
        out = model(torch.zeros(1, 3, size, size), **given)
    assert set(out[0]) == {"boxes", "scores", "labels"}


@pytest.mark.parametrize("name", DATA)
def test_every_data_config_composes(compose_cfg, name):
    cfg = compose_cfg(f"data={name}", *(["data.root=/somewhere"] if name in ("voc07", "voc0712", "coco") else []))
    assert cfg.data.name == name and cfg.data.train.type in ("synthetic", "voc", "coco")


def test_data_configs_that_exist_here_instantiate(compose_cfg):
    from zoo.config.run import RunConfig
    from zoo.engine.loaders import build_split

    for name in ("synthetic", "bccd"):
        cfg = compose_cfg(f"data={name}")
        if name == "bccd" and not Path(cfg.data.root).exists():
            continue
        loader, _ = build_split(RunConfig.from_composed(cfg), "val", batch_size=2)
        assert len(loader.dataset) > 0


def test_misspelt_group_option_names_the_choices(compose_cfg):
    with pytest.raises(ConfigCompositionException, match=r"(?s)ssd_lte.*Available options.*ssd_lite"):
        compose_cfg("model=ssd_lte")


@pytest.mark.parametrize("override", ["trainer.max_epoch=3", "data.num_worker=1"])
def test_misspelt_key_fails_at_compose_time(compose_cfg, override):
    with pytest.raises((ConfigCompositionException, ConfigKeyError), match=override.split("=")[0].split(".")[1]):
        compose_cfg(override)


def test_wrong_type_fails_at_compose_time(compose_cfg):
    with pytest.raises(ConfigCompositionException, match="max_epochs"):
        compose_cfg("trainer.max_epochs=many")


def test_eval_data_root_moves_every_path():
    from omegaconf import OmegaConf

    from zoo.config.run import _reroot

    data = OmegaConf.create({"root": "/old", "val": {"type": "coco", "ann_file": "/old/a.json", "image_dir": "/old/im",
                                                      "split": "val"}, "train": {"type": "voc", "root": "/old"},
                              "test": {"type": "voc", "root": ["/old/VOC2007", "/old/VOC2012", "/older/x"]}})
    _reroot(data, "/new")
    assert data.val.ann_file == "/new/a.json" and data.val.image_dir == "/new/im" and data.train.root == "/new"
    assert list(data.test.root) == ["/new/VOC2007", "/new/VOC2012", "/older/x"]  # a sibling folder is not under root


# faster_rcnn_training_joint: the paper describes the result without printing it; rcnn_progression_fpn: the FPN paper
# reports COCO only, and the table's figures are VOC07's
NO_PAPER_FIGURE = {"faster_rcnn_training_joint", "rcnn_progression_fpn"}


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_builds_and_carries_its_paper_figure(compose_cfg, name):
    cfg = compose_cfg(f"experiment={name}", "data.root=/somewhere")
    assert cfg.paper.metric and isinstance(cfg.paper.verified, bool)
    assert cfg.paper.value is None if name in NO_PAPER_FIGURE else cfg.paper.value > 0
    classes = cfg.data.classes or range(80)  # COCO reads its class list from the annotation file
    with torch.device("meta"):  # built without filling its weights (test_every_model_config_builds_and_runs does)
        build_detector(model_node(cfg.model), num_classes=len(classes))


def test_an_experiment_runs_on_the_cpu_protocol_with_its_ablation_kept(compose_cfg):
    cfg = compose_cfg("experiment=refinedet320_table3_no_tcb", "model=refinedet_lite", "data=bccd", "trainer=cpu_bccd")
    assert cfg.model.name == "refinedet_lite" and cfg.model.neck.type == "none"
    assert not cfg.model.refine.cascade and not cfg.model.refine.filter_negatives


def test_a_stored_config_from_before_a_key_moved_reads_as_todays(compose_cfg):
    """Hard-negative mining was the multibox loss's own (neg_pos_ratio) before it became a registered sampler."""
    from omegaconf import OmegaConf

    from zoo.config import stored_run_config
    from zoo.config.compare import run_config_differences

    today = compose_cfg("model=ssd_lite")
    old = OmegaConf.to_container(today, resolve=True)
    old["model"]["loss"] = {"type": "multibox", "neg_pos_ratio": 3.0, "loc_weight": 1.0}
    assert run_config_differences(today, OmegaConf.create(old)) == ["model"]
    assert run_config_differences(today, stored_run_config(old)) == []
    old["model"]["loss"]["neg_pos_ratio"] = 2.0  # a real difference stays one
    assert run_config_differences(today, stored_run_config(old)) == ["model"]
    assert stored_run_config(old).model.loss.sampler == {"type": "hard_negative", "neg_pos_ratio": 2.0}


def test_where_the_data_lies_does_not_make_another_run(compose_cfg):
    from omegaconf import OmegaConf

    from zoo.config import stored_run_config
    from zoo.config.compare import run_config_differences
    from zoo.config.run import RunConfig

    trained = compose_cfg("data=bccd")
    RunConfig.from_composed(trained)  # as zoo-train stores it: the root, and every split's, absolute
    stored = stored_run_config(OmegaConf.to_container(trained, resolve=True))
    assert stored.data.train.root.startswith("/") and not compose_cfg("data=bccd").data.root.startswith("/")
    assert run_config_differences(compose_cfg("data=bccd"), stored, shared_only=True) == []
    moved = compose_cfg("data=bccd", "data.root=/elsewhere/bccd")  # the same data set on another machine
    assert run_config_differences(moved, stored, shared_only=True) == []
    assert run_config_differences(compose_cfg("data=bccd", "data.train.split=test"), stored, shared_only=True) == ["data"]
    other = compose_cfg("data=bccd", "data.train.root=/elsewhere/other")  # a split reading another folder
    assert run_config_differences(other, stored, shared_only=True) == ["data"]
