"""What every evaluator shares: building from config, plots, tables, the reset/process cycle."""
import math

import numpy as np
import pytest
from omegaconf import OmegaConf

from zoo.evaluation import COCOEvaluator, VOCEvaluator, build_evaluators
from zoo.registry import EVALUATORS, ConfigError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_registered():
    assert {"voc", "coco"} <= set(EVALUATORS.names())


def test_build_one_node_or_a_list():
    names = ["a", "b"]
    (voc,) = build_evaluators({"type": "voc"}, names)
    assert isinstance(voc, VOCEvaluator) and voc.primary_metric == "voc07_map50" and voc.class_names == names

    cfg = OmegaConf.create([{"type": "voc", "use_07_metric": False, "iou_threshold": 0.75},
                            {"type": "coco", "backend": "faster_coco_eval"}])
    voc, coco = build_evaluators(cfg, OmegaConf.create(names))
    assert voc.primary_metric == "voc_map75"
    assert isinstance(coco, COCOEvaluator) and coco.primary_metric == "coco_ap" and coco.backend == "faster_coco_eval"


def test_config_typos_fail_with_the_choices():
    with pytest.raises(ConfigError, match="known evaluator types: coco, errors, proposal_recall, voc"):
        build_evaluators({"type": "vocc"}, ["a"])
    with pytest.raises(ConfigError, match="iou_treshold"):
        build_evaluators({"type": "voc", "iou_treshold": 0.5}, ["a"])


@pytest.mark.parametrize("factory", [VOCEvaluator, COCOEvaluator])
def test_plot_and_table(factory, detection_set, tmp_path):
    names, gts, preds = detection_set
    ev = factory(names)
    with pytest.raises(RuntimeError, match="evaluate"):
        ev.plot(str(tmp_path))
    ev.process(gts, preds)
    results = ev.evaluate()
    assert 0.0 < results[ev.primary_metric] < 1.0

    paths = ev.plot(str(tmp_path / "plots"))
    assert paths and all(open(p, "rb").read(8) == PNG_MAGIC for p in paths)

    table = ev.format_table(results)
    assert all(name in table for name in names)
    assert "mean" in table and f"{ev.primary_metric} = {results[ev.primary_metric]:.4f}" in table


@pytest.mark.parametrize("factory", [VOCEvaluator, COCOEvaluator])
def test_results_are_flat_floats_plus_per_class(factory, detection_set):
    names, gts, preds = detection_set
    ev = factory(names)
    ev.process(gts[:10], preds[:10])  # two batches give the same answer as one
    ev.process(gts[10:], preds[10:])
    results = ev.evaluate()
    assert set(results["per_class"]) == set(names)
    assert all(isinstance(v, float) for k, v in results.items() if k != "per_class")

    ev.reset()
    ev.process(gts, preds)
    again = ev.evaluate()
    assert again[ev.primary_metric] == results[ev.primary_metric]


def test_table_prints_undefined_values_as_a_dash():
    ev = VOCEvaluator(["a", "b"])
    ev.process([{"image_id": 1, "boxes": np.array([[0.0, 0, 10, 10]]), "labels": np.array([0])}],
               [{"image_id": 1, "boxes": np.array([[0.0, 0, 10, 10]]), "scores": np.array([0.9]),
                 "labels": np.array([0])}])
    results = ev.evaluate()
    assert math.isnan(results["per_class"]["b"]["ap"])
    row_b = next(line for line in ev.format_table(results).splitlines() if line.startswith("b "))
    assert row_b.split()[-1] == "-"
