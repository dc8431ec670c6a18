"""zoo-reproduce: rows x seeds run once and are read back, the table carries the paper beside us, and
the ordering check compares the signs of successive changes."""
import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from tests.conftest import TINY
from zoo.config.paths import CONF_DIR
from zoo.tables.reproduce import reproduce
from zoo.tables.plot import label_points_apart
from zoo.tables.report import ordering_holds, pairs_in_papers_order, write_table
from zoo.tables.rows import Row


def _table(name):
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        return OmegaConf.to_container(compose("reproduce", overrides=[f"table={name}"]).table, resolve=True)


def test_rows_run_once_then_are_read_back(tmp_path, caplog):
    calls = []

    def fake_train(cfg, run_dir):  # what Trainer.fit leaves behind, with a figure per row and seed
        value = 0.5 + 0.01 * len(calls)
        calls.append((cfg.model.name, cfg.seed, cfg.model.get("refine", {}).get("cascade")))
        results = {"metrics": {"voc07_map50": value}}
        run_dir.mkdir(parents=True)
        (run_dir / "results.json").write_text(json.dumps(results))
        return results

    table = _table("refinedet_table3")
    with caplog.at_level("INFO", logger="zoo.reproduce"):
        rows = reproduce(table, "synthetic", 2, tmp_path, train=fake_train)
    assert "refinedet_table3: row 4/4 refinedet320_table3_no_tcb, seed 2/2: training in" in caplog.text
    assert len(calls) == 8 and {c[0] for c in calls} == {"refinedet_lite"}
    assert [c[2] for c in calls[::2]] == [True, True, False, False]  # the ablation switches reach the runs
    assert [r.paper for r in rows] == [80.0, 79.5, 77.3, 76.2] and rows[0].runs == pytest.approx([50.0, 51.0])
    again = reproduce(table, "synthetic", 2, tmp_path, train=fake_train)  # resumable: nothing reruns
    assert len(calls) == 8 and [r.runs for r in again] == [r.runs for r in rows]
    paths = write_table(rows, table, "synthetic", 2, tmp_path, "zoo-reproduce table=refinedet_table3")
    text = Path(paths["md"]).read_text()
    assert ("| refinedet320_table3_no_tcb | model/neck=none, model.refine.filter_negatives=false, "
            "model.refine.cascade=false | 76.2 (unverified) | 56.50 ± 0.71 | -1.10 | +2.00 | no |") in text
    assert "| 80.0 | 50.50 ± 0.71 | - | - | - |" in text and "-19.70" not in text  # no ours-minus-paper across data sets
    assert json.loads(Path(paths["json"]).read_text())["rows"][3]["paper"] == 76.2


def test_a_real_row_trains_under_the_protocol(tmp_path):
    table = {**_table("refinedet_table3"), "rows": ["refinedet320_table3_no_tcb"]}
    rows = reproduce(table, "synthetic", 1, tmp_path,
                     overrides=[*TINY, "model.input_size=128", "trainer.max_iters=1", "trainer.eval_every=0"])
    results = json.loads((tmp_path / "refinedet320_table3_no_tcb" / "seed0" / "results.json").read_text())
    assert results["paper"]["value"] == 76.2 and not results["paper"]["same_data"]
    assert rows[0].runs == [pytest.approx(100 * results["metrics"]["voc07_map50"])]


def test_an_interrupted_row_continues_from_its_last_checkpoint(tmp_path):
    """A row whose last.pt exists but whose results.json does not resumes instead of starting over."""
    table = {**_table("refinedet_table3"), "rows": ["refinedet320_table3_no_tcb"]}
    overrides = [*TINY, "model.input_size=128", "trainer.max_iters=2", "trainer.eval_every=0"]
    first = reproduce(table, "synthetic", 1, tmp_path, overrides=overrides)
    run_dir = tmp_path / "refinedet320_table3_no_tcb" / "seed0"
    (run_dir / "results.json").unlink()  # as if stopped between the last checkpoint and the results
    train_lines = (run_dir / "metrics.jsonl").read_text().count('"kind": "train"')
    again = reproduce(table, "synthetic", 1, tmp_path, overrides=overrides)
    assert (run_dir / "metrics.jsonl").read_text().count('"kind": "train"') == train_lines  # no step retrained
    assert again[0].runs == first[0].runs


def test_ordering_follows_the_sign_of_each_change():
    rows = [Row("a", "", 80.0, True, [60.0]), Row("b", "", 79.5, True, [59.0]), Row("c", "", 77.3, False, [59.5]),
            Row("d", "", None, False, [50.0])]
    # one run each: no spread to judge by; c's paper figure is unchecked, so is any verdict resting on it
    assert ordering_holds(rows) == [None, "yes (1 seed)", "no (1 seed) (unverified)", None]
    assert ordering_holds(rows, reference="a") == [None, "yes (1 seed)", "yes (1 seed) (unverified)", None]
    rows[2].step_verified = True  # the paper's change is confirmed though its figure is not
    assert ordering_holds(rows)[2] == "no (1 seed)"
    tie = [Row("a", "", 69.8, True, [60.0, 61.0]), Row("b", "", 69.9, True, [55.0, 56.0])]
    assert ordering_holds(tie) == [None, "paper tie"]  # +0.1 in the paper is no ordering to hold


def test_a_change_smaller_than_the_seeds_spread_is_within_noise():
    full, ablated = Row("full", "", 80.0, True, [60.0, 62.0]), Row("ablated", "", 76.2, True, [59.0, 61.5])
    assert ordering_holds([full, ablated]) == [None, "within noise"]  # -0.75 against 2 x 1.06
    assert ordering_holds([full, Row("ablated", "", 76.2, True, [57.0, 58.0])]) == [None, "yes"]


def test_single_seed_tables_write_valid_json_and_other_metrics_get_no_paper_bars(tmp_path):
    table = _table("cornernet_table1")
    rows = [Row("cornernet_table1_corner_pool", "", 38.4, False, [70.0]),
            Row("cornernet_table1_no_corner_pool", "", 36.5, False, [69.0])]
    paths = write_table(rows, table, "bccd", 1, tmp_path, "zoo-reproduce table=cornernet_table1")
    data = json.loads(Path(paths["json"]).read_text())  # strict: NaN would not parse as JSON elsewhere
    assert data["rows"][0]["std"] is None and "NaN" not in Path(paths["json"]).read_text()
    text = Path(paths["md"]).read_text()
    assert "| 38.4 (unverified) | 70.00 | - | - | - |" in text and "| -1.00 |" in text
    assert "The paper's figures are coco_ap, ours voc07_map50" in text


def test_bad_requests_name_the_problem(tmp_path):
    table = _table("cornernet_table1")
    with pytest.raises(ValueError, match="protocol must be one of"):
        reproduce(table, "voc", 1, tmp_path)
    with pytest.raises(ValueError, match=r"no experiment file for row\(s\) \['nope'\]"):
        reproduce({**table, "rows": ["nope"]}, "bccd", 1, tmp_path)


def test_a_protocol_skips_the_rows_its_model_cannot_express(tmp_path):
    seen = {}

    def fake_train(cfg, run_dir):
        seen[cfg.model.name, str(run_dir.parent.name)] = (list(map(list, cfg.model.priors.aspect_ratios)),
                                                          cfg.model.transforms.train.expand)
        return {"metrics": {"voc07_map50": 0.5}}

    rows = reproduce(_table("ssd_table2"), "bccd", 1, tmp_path, train=fake_train)
    assert [r.experiment for r in rows] == ["ssd300_table2_no_augmentation", "ssd300_table2_no_extra_ratios",
                                            "ssd300_table2_no_ratio3", "ssd300_table2_full"]
    assert seen["ssd_lite", "ssd300_table2_no_ratio3"] == ([[2]] * 6, False)
    assert seen["ssd_lite", "ssd300_table2_no_extra_ratios"] == ([[]] * 6, False)


def test_fpn_table1_rows_keep_rpn_only_training_under_the_cpu_protocol(tmp_path):
    seen = {}

    def fake_train(cfg, run_dir):
        seen[run_dir.parent.name] = ([s["name"] for s in cfg.trainer.stages], list(cfg.evaluator),
                                     cfg.model.name, cfg.model.neck.get("finest_only"))
        return {"metrics": {"rpn_ar1000": 0.5}}

    rows = reproduce(_table("fpn_table1"), "bccd", 1, tmp_path, train=fake_train)
    assert [r.experiment for r in rows] == ["fpn_table1_c4", "fpn_table1_fpn", "fpn_table1_no_top_down",
                                            "fpn_table1_no_lateral", "fpn_table1_p2_only"]
    assert seen["fpn_table1_p2_only"] == (["rpn"], ["rpn"], "fpn_lite", True)
    assert seen["fpn_table1_c4"] == (["rpn"], ["rpn"], "faster_rcnn_lite", None)  # the row's own model wins
    assert [r.paper for r in rows[:2]] == [48.3, 56.3]


def test_a_table_of_models_carries_their_speed(tmp_path):
    def fake_train(cfg, run_dir):
        return {"metrics": {"voc07_map50": {"ssd_lite": 0.6, "fpn_lite": 0.7}[cfg.model.name]}}

    table = {**_table("zoo_speed_accuracy"), "rows": ["ssd_lite", "fpn_lite"], "also_tta": None}
    rows = reproduce(table, "synthetic", 1, tmp_path, train=fake_train,
                     latency=lambda run_dir: {"ssd_lite": 5.0, "fpn_lite": 9.0}[run_dir.parent.name])
    assert [(r.settings, r.runs, r.ms, r.paper) for r in rows] == [("model=ssd_lite", [60.0], 5.0, None),
                                                                   ("model=fpn_lite", [70.0], 9.0, None)]
    paths = write_table(rows, table, "synthetic", 1, tmp_path, "zoo-reproduce table=zoo_speed_accuracy")
    assert "| fpn_lite | model=fpn_lite | - | 70.00 | - | - | - | 9.0 |" in Path(paths["md"]).read_text()


def test_rows_timed_on_two_machines_are_named_under_each(tmp_path):
    table = {**_table("zoo_speed_accuracy"), "also_tta": None}
    rows = [Row("ssd_lite", "model=ssd_lite", None, False, [80.0], 20.0, timed_on="machine: A"),
            Row("fpn_lite", "model=fpn_lite", None, False, [85.0], 90.0, timed_on="machine: B"),
            Row("refinedet_lite", "model=refinedet_lite", None, False, [86.0], 45.0, timed_on="machine: A")]
    paths = write_table(rows, table, "bccd", 1, tmp_path, "zoo-reproduce")
    text = Path(paths["md"]).read_text()
    assert ("timed when the run finished; machine: A (ssd_lite, refinedet_lite); machine: B (fpn_lite) (rows timed "
            "on different machines: their times compare only within a machine).") in text
    assert Path(paths["png"]).stat().st_size > 0


def test_checkpoint_latency_times_real_images_as_evaluation_feeds_them(compose_cfg, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from zoo.apis import latency
    from zoo.engine import inference
    from zoo.engine.trainer import Trainer

    Trainer(compose_cfg(*TINY, "trainer.max_iters=1", "trainer.eval_every=0", "trainer.channels_last=false"),
            tmp_path).fit()
    seen, load = [], latency.TrainedRun

    def recording_load(*args, **kwargs):
        trained = load(*args, **kwargs)
        trained.model.register_forward_pre_hook(
            lambda m, a, kw: seen.append((a[0].is_contiguous(), kw.get("image_sizes"))), with_kwargs=True)
        return trained

    monkeypatch.setattr(latency, "TrainedRun", recording_load)
    # each forward's start and end: the warm-up's 10 ms, then forwards of 4 and 6 ms
    ticks = iter([0.0, 10.0, 10.0, 10.004, 20.0, 20.006])
    monkeypatch.setattr(inference, "time", SimpleNamespace(perf_counter=lambda: next(ticks)))  # the loop's clock alone
    ms = latency.checkpoint_latency(str(tmp_path / "checkpoints" / "last.pt"), num_images=2, warmup=1)
    assert ms == pytest.approx(5.0)  # the median of the timed forwards; the warm-up is not timed
    assert len(seen) == 3 and all(plain and sizes == [(320, 320)] for plain, sizes in seen)  # NCHW, as it trained


def test_rows_compose_inside_a_running_hydra_app():
    from zoo.tables.runs import compose_row

    with initialize_config_dir(CONF_DIR, version_base="1.3"):  # as under zoo-reproduce's @hydra.main
        cfg = compose_row("refinedet320_table3_no_tcb", ["model=refinedet_lite"], 1)
    assert cfg.model.neck.type == "none" and cfg.seed == 1


def test_fpn_table3_maps_its_rows_to_the_small_models_under_the_cpu_protocol(tmp_path):
    seen = {}

    def fake_train(cfg, run_dir):
        seen[run_dir.parent.name] = (OmegaConf.to_container(cfg.model, resolve=True), list(cfg.evaluator))
        return {"metrics": {"voc07_map50": 0.5}}

    table = _table("fpn_table3")
    rows = reproduce(table, "bccd", 1, tmp_path, train=fake_train)
    assert [r.experiment for r in rows] == ["fpn_table3_c4", "fpn_table3_fpn"]
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        for row, model in [("fpn_table3_c4", "faster_rcnn_lite"), ("fpn_table3_fpn", "fpn_lite")]:
            alone = compose("train", overrides=[f"model={model}"]).model  # nothing of the paper's model leaks in
            assert seen[row] == (OmegaConf.to_container(alone, resolve=True), ["voc07"])
    assert rows[0].settings == "as the paper; under bccd: model=faster_rcnn_lite"
    assert [r.paper for r in rows] == [31.6, 33.9]
    with pytest.raises(ValueError, match=r"row_overrides for row\(s\) \['nope'\]"):
        reproduce({**table, "protocols": {"bccd": {"overrides": [], "row_overrides": {"nope": []}}}}, "bccd", 1,
                  tmp_path, train=fake_train)


def test_the_training_modes_table_trains_each_mode_and_reports_its_minutes(tmp_path):
    seen = {}

    def fake_train(cfg, run_dir):
        seen[run_dir.parent.name, cfg.seed] = [s["name"] for s in cfg.trainer.stages]
        return {"metrics": {"voc07_map50": 0.5 + 0.1 * cfg.seed}, "train_seconds": 600.0 + 60 * cfg.seed}

    table = _table("faster_rcnn_training")
    rows = reproduce(table, "bccd", 2, tmp_path, train=fake_train)
    assert seen["faster_rcnn_training_joint", 1] == []
    assert seen["faster_rcnn_training_four_step", 0] == ["rpn", "detector", "rpn_finetune", "detector_finetune"]
    assert [(r.paper, r.train_minutes) for r in rows] == [(None, 10.5), (69.9, 10.5)]
    text = Path(write_table(rows, table, "bccd", 2, tmp_path, "zoo-reproduce ...")["md"]).read_text()
    assert "| faster_rcnn_training_joint | trainer/stages=joint | - | 55.00 ± 7.07 | - | - | - | 10.5 |" in text
    assert "train min: each run's training wall clock" in text


def test_a_finished_row_is_read_back_only_under_the_config_it_trained_with(tmp_path):
    from zoo.engine.checkpoint import save_checkpoint

    def fake_train(cfg, run_dir):  # results plus a checkpoint carrying the config, as Trainer.fit leaves them
        stored = OmegaConf.to_container(cfg, resolve=True)
        del stored["trainer"]["grad_clip"]  # as if the key was added to the configs after the run, at its default
        save_checkpoint({"config": OmegaConf.to_yaml(OmegaConf.create(stored))}, run_dir / "checkpoints" / "last.pt")
        (run_dir / "results.json").write_text(json.dumps({"metrics": {"voc07_map50": 0.5}}))
        return {"metrics": {"voc07_map50": 0.5}}

    table = {**_table("cornernet_table1"), "rows": ["cornernet_table1_corner_pool"], "tta": None}
    reproduce(table, "synthetic", 1, tmp_path, train=fake_train)
    rows = reproduce(table, "synthetic", 1, tmp_path, train=lambda cfg, run_dir: pytest.fail("retrained"))
    assert rows[0].runs == [50.0]
    with pytest.raises(ValueError, match=r"seed0 finished with another config .*\['trainer.max_epochs'\]"):
        reproduce(table, "synthetic", 1, tmp_path, overrides=["trainer.max_epochs=3"], train=fake_train)


def test_report_only_writes_a_partial_table_from_the_finished_runs(tmp_path):
    table = _table("refinedet_table3")
    finished = tmp_path / "refinedet320_table3_full" / "seed0"
    finished.mkdir(parents=True)
    (finished / "results.json").write_text(json.dumps({"metrics": {"voc07_map50": 0.6}}))
    rows = reproduce(table, "synthetic", 2, tmp_path, report_only=True,
                     train=lambda cfg, run_dir: pytest.fail("report_only trained a row"))
    assert [r.runs for r in rows] == [[60.0], [], [], []]
    assert [r.paper for r in rows] == [80.0, 79.5, 77.3, 76.2]  # the paper's figures even for rows not yet run
    text = Path(write_table(rows, table, "synthetic", 2, tmp_path, "zoo-reproduce")["md"]).read_text()
    assert "**Partial: 1 of 8 runs finished**" in text and "| 60.00 (1 of 2 seeds) |" in text
    assert "| 79.5 (unverified) | not finished | -0.50 (unverified) | - | - |" in text


def test_a_table_with_the_papers_test_time_augmentation_scores_every_row_with_it(tmp_path):
    def fake_train(cfg, run_dir):
        run_dir.mkdir(parents=True)
        results = {"metrics": {"voc07_map50": 0.6}, "train_seconds": 60.0}
        (run_dir / "results.json").write_text(json.dumps(results))
        return results

    scored = []

    def fake_tta(run_dir, tta):
        scored.append((run_dir.parent.name, tta))
        return {"metrics": {"voc07_map50": 0.7}}

    table = _table("cornernet_table1")
    rows = reproduce(table, "bccd", 1, tmp_path, train=fake_train, score_tta=fake_tta)
    assert scored == [("cornernet_table1_corner_pool", "cornernet_flip"),
                      ("cornernet_table1_no_corner_pool", "cornernet_flip")]
    assert [r.runs for r in rows] == [[70.0], [70.0]]
    text = Path(write_table(rows, table, "bccd", 1, tmp_path, "zoo-reproduce")["md"]).read_text()
    assert "Every row scored with the test-time augmentation `tta=cornernet_flip`" in text
    plain = {**table, "protocols": {**table["protocols"], "bccd": {**table["protocols"]["bccd"], "tta": None}}}
    assert [r.runs for r in reproduce(plain, "bccd", 1, tmp_path, score_tta=fake_tta)] == [[60.0], [60.0]]
    with pytest.raises(ValueError, match="tta 'nope' has no file conf/tta/nope.yaml"):
        reproduce({**table, "tta": "nope"}, "bccd", 1, tmp_path)


def test_also_tta_puts_each_row_with_flip_beside_the_plain_figure_and_the_change_per_seed(tmp_path):
    def fake_train(cfg, run_dir):
        run_dir.mkdir(parents=True)
        results = {"metrics": {"voc07_map50": 0.5 + 0.1 * cfg.seed}}
        (run_dir / "results.json").write_text(json.dumps(results))
        return results

    def fake_tta(run_dir, tta):
        assert tta == "flip"
        plain = json.loads((run_dir / "results.json").read_text())["metrics"]["voc07_map50"]
        return {"metrics": {"voc07_map50": plain + (0.02 if run_dir.name == "seed0" else -0.01)}}

    table = {**_table("zoo_speed_accuracy"), "rows": ["ssd_lite"], "also_tta": "flip"}
    rows = reproduce(table, "synthetic", 2, tmp_path, train=fake_train, score_tta=fake_tta, latency=lambda d: 2.0)
    assert rows[0].runs == pytest.approx([50.0, 60.0]) and rows[0].also_runs == pytest.approx([52.0, 59.0])
    paths = write_table(rows, table, "synthetic", 2, tmp_path, "zoo-reproduce")
    text = Path(paths["md"]).read_text()
    assert "| with `tta=flip` | `tta=flip` minus plain, per seed |" in text
    assert "| 55.50 ± 4.95 | +0.50 ± 2.12 |" in text  # changes +2 and -1
    assert json.loads(Path(paths["json"]).read_text())["rows"][0]["also_runs"] == pytest.approx([52.0, 59.0])
    with pytest.raises(ValueError, match="also_tta 'nope' has no file conf/tta/nope.yaml"):
        reproduce({**table, "also_tta": "nope"}, "synthetic", 1, tmp_path)


def test_row_tta_scores_a_real_checkpoint_once(compose_cfg, tmp_path):
    from zoo.tables.reproduce import row_tta
    from zoo.engine.trainer import Trainer

    Trainer(compose_cfg(*TINY, "trainer.max_iters=1", "trainer.eval_every=0"), tmp_path).fit()
    first = row_tta(tmp_path, "flip")
    assert first["tta"] == "flip" and "voc07_map50" in first["metrics"]
    assert (tmp_path / "tta_flip.json").is_file() and row_tta(tmp_path, "flip") == first
    # A figure scored with other settings (conf/tta/flip.yaml edited since) is scored again, not reused.
    stale = {**first, "tta_node": {**first["tta_node"], "max_detections": 7}, "metrics": {"voc07_map50": -1.0}}
    (tmp_path / "tta_flip.json").write_text(json.dumps(stale))
    assert row_tta(tmp_path, "flip")["metrics"] == first["metrics"]


def _train_with_checkpoint(cfg, run_dir, value=0.5):
    """What Trainer.fit leaves behind: results, and a checkpoint carrying the config."""
    from zoo.engine.checkpoint import save_checkpoint

    save_checkpoint({"config": OmegaConf.to_yaml(cfg, resolve=True)}, run_dir / "checkpoints" / "last.pt")
    (run_dir / "results.json").write_text(json.dumps({"metrics": {"voc07_map50": value}}))
    return {"metrics": {"voc07_map50": value}}


def test_a_row_takes_a_finished_run_of_another_table_with_its_config(tmp_path):
    full = {**_table("refinedet_table3"), "rows": ["refinedet320_table3_full"]}
    reproduce(full, "synthetic", 1, tmp_path / "refinedet_table3-synthetic", train=_train_with_checkpoint)
    models = {**_table("zoo_speed_accuracy"), "rows": ["refinedet_lite", "ssd_lite"], "also_tta": None}
    trained = []

    def train(cfg, run_dir):
        trained.append(cfg.model.name)
        return _train_with_checkpoint(cfg, run_dir, 0.4)

    rows = reproduce(models, "synthetic", 1, tmp_path / "zoo_speed_accuracy-synthetic", train=train,
                     latency=lambda run_dir: 1.0)
    assert trained == ["ssd_lite"] and [r.runs for r in rows] == [[50.0], [40.0]]  # refinedet_lite: Table 3's full row
    taken = tmp_path / "zoo_speed_accuracy-synthetic" / "refinedet_lite" / "seed0"
    source = json.loads((taken / "twin.json").read_text())["from"]
    assert source.endswith("refinedet320_table3_full/seed0") and (taken / "checkpoints" / "last.pt").is_file()
    again = reproduce(models, "synthetic", 1, tmp_path / "zoo_speed_accuracy-synthetic", latency=lambda run_dir: 1.0,
                      train=lambda cfg, run_dir: pytest.fail("retrained"))
    assert [r.runs for r in again] == [[50.0], [40.0]]
    alone = reproduce(models, "synthetic", 1, tmp_path / "other" / "zoo_speed_accuracy-synthetic", train=train,
                      latency=lambda run_dir: 1.0, reuse=False)
    assert trained[1:] == ["refinedet_lite", "ssd_lite"] and [r.runs for r in alone] == [[40.0], [40.0]]


def test_an_interrupted_take_is_finished_not_trained_and_survives_moving_the_runs(tmp_path):
    from zoo.tables.runs import take_twin

    tables = tmp_path / "tables"
    full = {**_table("refinedet_table3"), "rows": ["refinedet320_table3_full"]}
    reproduce(full, "synthetic", 1, tables / "refinedet_table3-synthetic", train=_train_with_checkpoint)
    source = tables / "refinedet_table3-synthetic" / "refinedet320_table3_full" / "seed0"
    row = tables / "zoo_speed_accuracy-synthetic" / "refinedet_lite" / "seed0"
    take_twin(source, row)
    (row / "results.json").unlink()  # as if stopped between the link and the results
    before = sorted(p.name for p in (source / "checkpoints").iterdir())
    models = {**_table("zoo_speed_accuracy"), "rows": ["refinedet_lite"], "also_tta": None}
    rows = reproduce(models, "synthetic", 1, tables / "zoo_speed_accuracy-synthetic", latency=lambda run_dir: 1.0,
                     train=lambda cfg, run_dir: pytest.fail("trained over a twin"), reuse=False)
    assert rows[0].runs == [50.0] and sorted(p.name for p in (source / "checkpoints").iterdir()) == before
    (tmp_path / "tables").rename(tmp_path / "moved")  # the link is relative: the copy still points at its twin
    again = reproduce(models, "synthetic", 1, tmp_path / "moved" / "zoo_speed_accuracy-synthetic",
                      latency=lambda run_dir: 1.0, train=lambda cfg, run_dir: pytest.fail("retrained"))
    assert again[0].runs == [50.0]
    row = tmp_path / "moved" / "other-synthetic" / "refinedet_lite" / "seed0"
    take_twin(tmp_path / "moved" / "refinedet_table3-synthetic" / "refinedet320_table3_full" / "seed0", row)
    (row / "results.json").unlink()  # interrupted again, and the row's config changed meanwhile
    with pytest.raises(ValueError, match=r"was being taken from .*differs from that run's in \['trainer.batch_size'\]"):
        reproduce(models, "synthetic", 1, row.parents[1], latency=lambda _: 1.0, overrides=["trainer.batch_size=2"],
                  train=lambda cfg, run_dir: pytest.fail("trained"))
    assert not (row / "results.json").exists()


def test_report_only_computes_nothing_it_has_no_file_for(tmp_path):
    table = {**_table("cornernet_table1"), "rows": ["cornernet_table1_corner_pool"]}
    reproduce({**table, "tta": None}, "bccd", 1, tmp_path, train=_train_with_checkpoint)
    rows = reproduce(table, "bccd", 1, tmp_path, report_only=True,
                     score_tta=lambda run_dir, tta: pytest.fail("scored a report"))
    assert rows[0].runs == []  # its flip-test figure is not on disk yet
    speed = {**_table("zoo_speed_accuracy"), "rows": ["ssd_lite"], "also_tta": None}
    reproduce(speed, "synthetic", 1, tmp_path / "speed", train=_train_with_checkpoint, latency=lambda run_dir: 2.0)
    rows = reproduce(speed, "synthetic", 1, tmp_path / "speed", report_only=True,
                     latency=lambda run_dir: pytest.fail("timed a report"))
    assert rows[0].runs == [50.0] and rows[0].ms is None


def test_a_data_set_may_not_set_the_transform_switch_a_table_compares():
    from zoo.tables.reproduce import check_row_switches
    from zoo.tables.runs import compose_row

    table = _table("ssd_table2")
    rows = [r for r in table["rows"] if r not in table["protocols"]["synthetic"]["skip"]]
    plain = ["model=ssd_lite", "data=synthetic", "trainer=synthetic", "evaluator=voc07"]
    with pytest.raises(ValueError, match=r"augment.ssd_train.\['expand', 'min_iou_crop'\].*~data.augment.ssd_train"):
        check_row_switches(compose_row(rows[-1], plain, 0), rows)  # full and no-augmentation rows would be twins
    cfg = compose_row(rows[-1], table["protocols"]["synthetic"]["overrides"], 0)
    check_row_switches(cfg, rows)
    assert cfg.model.transforms.train.min_iou_crop is True  # the full row keeps its crop sampling


def test_a_misspelt_skip_is_refused_before_anything_trains(tmp_path):
    from zoo.tables.runs import check_table

    table = _table("ssd_table2")
    table["protocols"]["bccd"]["skip"] = ["ssd300_table2_no_atrus"]
    with pytest.raises(ValueError, match=r"skips row\(s\) \['ssd300_table2_no_atrus'\] that are not in its rows"):
        check_table(table, "bccd")
    check_table(_table("faster_rcnn_table8"), "bccd")  # '_small_anchors' holds a YAML anchor: not a table key


def test_an_archived_table_is_finished_elsewhere_without_retraining(tmp_path):
    table = {**_table("zoo_speed_accuracy"), "rows": ["ssd_lite", "refinedet_lite"], "also_tta": None}
    archive = tmp_path / "archive"

    def timed(run_dir):  # what row_latency leaves beside the checkpoint
        (run_dir / "latency.json").write_text(json.dumps({"ms_per_image": 4.0, "machine": "machine: A"}))
        return 4.0

    trained = []

    def train(cfg, run_dir):
        trained.append((cfg.model.name, cfg.seed))
        return _train_with_checkpoint(cfg, run_dir, 0.5 + 0.1 * cfg.seed)

    first = reproduce(table, "synthetic", 1, tmp_path / "here", train=train, latency=timed, archive=archive)
    assert trained == [("ssd_lite", 0), ("refinedet_lite", 0)]
    saved = json.loads((archive / "ssd_lite_seed0.json").read_text())
    assert saved["metrics"] == {"voc07_map50": 0.5} and saved["config"]["model"]["name"] == "ssd_lite"
    assert json.loads((archive / "refinedet_lite_seed0_latency.json").read_text())["ms_per_image"] == 4.0

    # another machine, no runs folder: seed 0 comes back from the archive (latency included), seed 1 trains
    second = reproduce(table, "synthetic", 2, tmp_path / "there", train=train, archive=archive)  # row_latency:
    # the restored latency.json, or a failure for want of a checkpoint
    assert trained[2:] == [("ssd_lite", 1), ("refinedet_lite", 1)]
    assert [r.runs for r in second] == [[50.0, 60.0], [50.0, 60.0]] and [r.runs[0] for r in first] == [50.0, 50.0]
    assert [r.ms for r in second] == [4.0, 4.0] and second[0].timed_on == "machine: A"
    assert (archive / "refinedet_lite_seed1.json").is_file()
    text = Path(write_table(second, table, "synthetic", 2, tmp_path, "zoo-reproduce")["md"]).read_text()
    assert "timed when the run finished; machine: A." in text

    # Today's config differs from the archived runs' (archives are records, not a pin on the configs): a report
    # shows them as stale records of their own config, training nothing...
    changed = ["trainer.max_epochs=3"]
    report = reproduce(table, "synthetic", 1, tmp_path / "third", train=train, archive=archive, overrides=changed,
                       report_only=True)
    assert len(trained) == 4 and [r.runs for r in report] == [[50.0], [50.0]]
    assert [r.stale for r in report] == [["trainer.max_epochs"], ["trainer.max_epochs"]]
    text = Path(write_table(report, table, "synthetic", 1, tmp_path, "zoo-reproduce")["md"]).read_text()
    assert "| ssd_lite (stale) |" in text and "Stale: ssd_lite (differs in trainer.max_epochs)" in text
    # ...and a run trains them anew with today's config, whose figures then replace them in the archive
    again = reproduce(table, "synthetic", 1, tmp_path / "third", train=train, latency=timed, archive=archive,
                      overrides=changed)
    assert trained[4:] == [("ssd_lite", 0), ("refinedet_lite", 0)] and [r.stale for r in again] == [[], []]
    assert json.loads((archive / "ssd_lite_seed0.json").read_text())["config"]["trainer"]["max_epochs"] == 3


def test_the_command_restores_archived_runs_and_leaves_the_table_beside_them(tmp_path):
    import subprocess
    import sys

    archive = tmp_path / "refinedet_table3_bccd"
    archive.mkdir()  # a run archived before configs were stored with it: restored as it is
    (archive / "refinedet320_table3_full_seed0.json").write_text(json.dumps({"metrics": {"voc07_map50": 0.8}}))
    done = subprocess.run([sys.executable, "-m", "zoo.cli.reproduce", "table=refinedet_table3", "protocol=synthetic",
                           "seeds=1", "report_only=true", f"out={tmp_path / 'runs'}", f"archive={archive}"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "runs" / "refinedet320_table3_full" / "seed0" / "results.json").read_text()) == {
        "metrics": {"voc07_map50": 0.8}}
    table = (archive / "table.md").read_text()
    assert "**Partial: 1 of 4 runs finished**" in table and "| 80.00 |" in table
    assert (archive / "table.json").is_file() and (archive / "table.png").is_file()


@pytest.mark.parametrize("name,mode", [("ssd_table2", "object"), ("refinedet_table3", "object"),
                                       ("faster_rcnn_table8", "drop"), ("faster_rcnn_training", "drop")])
def test_paper_protocols_train_on_difficult_objects_as_the_authors_code_does(name, mode):
    from zoo.tables.runs import compose_row

    table = _table(name)
    for row in table["rows"]:
        cfg = compose_row(row, table["protocols"]["paper"]["overrides"], 0)
        assert cfg.data.train.difficult == mode and "difficult" not in cfg.data.test


def test_the_table_names_the_code_its_runs_trained_with(tmp_path):
    table = _table("refinedet_table3")
    codes = iter(["abc1234", "abc1234", "abc1234", "abc1234", "def5678", "def5678", None, None])

    def fake_train(cfg, run_dir):
        results = {"metrics": {"voc07_map50": 0.5}, "code": next(codes)}
        run_dir.mkdir(parents=True)
        (run_dir / "results.json").write_text(json.dumps(results))
        return results

    rows = reproduce(table, "synthetic", 2, tmp_path, train=fake_train)
    assert [r.codes for r in rows][2:] == [["def5678", "def5678"], ["not recorded", "not recorded"]]
    text = Path(write_table(rows, table, "synthetic", 2, tmp_path / "a", "zoo-reproduce")["md"]).read_text()
    assert ("Runs trained with different code: `abc1234` (refinedet320_table3_full, refinedet320_table3_no_filter); "
            "`def5678` (refinedet320_table3_no_cascade); `not recorded` (refinedet320_table3_no_tcb).") in text
    text = Path(write_table(rows[:2], table, "synthetic", 2, tmp_path / "b", "zoo-reproduce")["md"]).read_text()
    assert "Runs trained with code `abc1234`." in text
    text = Path(write_table(rows[3:], table, "synthetic", 2, tmp_path / "c", "zoo-reproduce")["md"]).read_text()
    assert "Runs trained with" not in text  # runs from before the code was recorded: nothing to say
    rows[0].codes = ["unknown", "unknown"]
    text = Path(write_table(rows[:1], table, "synthetic", 2, tmp_path / "d", "zoo-reproduce")["md"]).read_text()
    assert "Runs trained with code `unknown` (a copy of the code outside a git checkout)." in text


def test_the_settings_column_shows_what_the_run_trained_with_when_the_protocol_sets_a_switch(tmp_path):
    def fake_train(cfg, run_dir):
        results = {"metrics": {"voc07_map50": 0.5 + 0.1 * cfg.model.targets.min_overlap}}
        run_dir.mkdir(parents=True)
        (run_dir / "results.json").write_text(json.dumps(results))
        return results

    def plain(run_dir, tta):  # the table's flip test, scored as the plain run here
        return json.loads((run_dir / "results.json").read_text())

    table = _table("cornernet_table1")
    bccd = table["protocols"]["bccd"]
    protocol_sets = {**table, "protocols": {"bccd": {**bccd, "overrides": [*bccd["overrides"],
                                                                           "model.targets.min_overlap=0.3"]}}}
    rows = reproduce(protocol_sets, "bccd", 1, tmp_path / "t0", train=fake_train, score_tta=plain)
    assert rows[0].runs == [pytest.approx(53.0)]  # trained at the protocol's 0.3
    assert "model.targets.min_overlap=0.3 (the protocol's; the row sets 0.7)" in rows[0].settings
    assert "model.targets.radius_formula=\"authors\"" in rows[0].settings
    rows = reproduce(table, "bccd", 1, tmp_path / "t1", train=fake_train, score_tta=plain)
    assert rows[0].runs == [pytest.approx(57.0)] and "min_overlap=0.7" in rows[0].settings  # the row's own
    rows = reproduce(_table("cornernet_table2"), "bccd", 1, tmp_path / "t2", train=fake_train, score_tta=plain)
    assert rows[2].runs == [pytest.approx(57.0)]  # the same radius as Table 1's rows


def test_a_retrained_run_drops_the_timing_and_tta_scores_of_its_old_checkpoint(tmp_path):
    table = _table("refinedet_table3")
    run_dir = tmp_path / "refinedet320_table3_full" / "seed0"
    run_dir.mkdir(parents=True)
    (run_dir / "latency.json").write_text(json.dumps({"ms_per_image": 1.0}))
    (run_dir / "tta_flip.json").write_text("{}")

    def fake_train(cfg, run_dir):
        assert not (run_dir / "latency.json").exists() and not list(run_dir.glob("tta_*.json"))
        results = {"metrics": {"voc07_map50": 0.5}}
        (run_dir / "results.json").write_text(json.dumps(results))
        return results

    table["rows"] = table["rows"][:1]
    assert reproduce(table, "synthetic", 1, tmp_path, train=fake_train)[0].runs == [50.0]


def test_pairs_across_the_table_are_counted_in_the_papers_order():
    rows = [Row("full", "", 77.2, True, [60.0]), Row("a", "", 65.5, True, [50.0]), Row("b", "", 71.6, True, [58.0]),
            Row("c", "", 73.7, True, [55.0]), Row("d", "", 73.9, True, [54.0]), Row("e", "", None, False, [1.0])]
    # Pairs whose paper figures differ by 0.5+ (c-d is a tie; e has no figure): 9; misordered: b-c, b-d.
    assert pairs_in_papers_order(rows) == (7, 9)


def test_the_paper_protocol_refuses_to_train_the_papers_imagenet_models_from_scratch(tmp_path):
    def fake_train(cfg, run_dir):
        results = {"metrics": {"voc07_map50": 0.5}}
        run_dir.mkdir(parents=True)
        (run_dir / "results.json").write_text(json.dumps(results))
        return results

    def never(cfg, run_dir):
        pytest.fail("trained without the paper's ImageNet weights")

    with pytest.raises(ValueError, match=r"faster_rcnn_table8.*\['model.backbone.weights', "
                                         r"'model.roi_head.box_features.weights'\] are not set"):
        reproduce(_table("faster_rcnn_table8"), "paper", 1, tmp_path / "a", train=never)
    table = _table("refinedet_table3")
    table["rows"] = table["rows"][:1]
    rows = reproduce(table, "paper", 1, tmp_path / "b", overrides=["model.backbone.weights=/data/vgg16.pth"],
                     train=fake_train)
    assert rows[0].runs == [50.0]
    # One file for the whole model: the C4 rows' res5 box head reads the backbone's file (one override serves
    # every row of a table whose rows have different box heads)
    def recall(cfg, run_dir):
        assert cfg.model.roi_head.box_features.get("weights", "/r50.pth") == "/r50.pth"
        return {"metrics": {"rpn_ar1000": 0.5}}

    fpn = reproduce(_table("fpn_table1"), "paper", 1, tmp_path / "d", overrides=["model.backbone.weights=/r50.pth"],
                    train=recall)
    assert [r.runs for r in fpn] == [[50.0]] * 6
    table = _table("cornernet_table1")  # the hourglass trains from scratch, as in its paper: nothing to ask
    table["rows"] = table["rows"][:1]
    rows = reproduce(table, "paper", 1, tmp_path / "c", train=fake_train,
                     score_tta=lambda run_dir, tta: {"metrics": {"coco_ap": 0.4}})
    assert rows[0].runs == [40.0]


def test_the_command_names_bad_input_in_one_line_without_a_traceback(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    done = subprocess.run([sys.executable, "-m", "zoo.cli.reproduce", "table=refinedet_table3", "protocol=paper",
                           "seeds=1", f"out={tmp_path}"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "zoo-reproduce: error: table refinedet_table3, row refinedet320_table3_full: the paper's model starts from " \
           "ImageNet weights, but ['model.backbone.weights'] are not set" in done.stderr


def test_a_finished_run_that_no_longer_fits_stops_the_table_before_anything_trains(tmp_path):
    from zoo.engine.checkpoint import save_checkpoint

    table = _table("refinedet_table3")
    last = tmp_path / "refinedet320_table3_no_tcb" / "seed0"  # the last row finished, under another schedule
    stored = OmegaConf.to_container(compose_row_for_test(table, "refinedet320_table3_no_tcb"), resolve=True)
    stored["trainer"]["max_epochs"] = 1
    save_checkpoint({"config": OmegaConf.to_yaml(OmegaConf.create(stored))}, last / "checkpoints" / "last.pt")
    (last / "results.json").write_text(json.dumps({"metrics": {"voc07_map50": 0.5}}))
    with pytest.raises(ValueError, match=r"no_tcb/seed0 finished with another config .*\['trainer.max_epochs'\]"):
        reproduce(table, "synthetic", 1, tmp_path, train=lambda cfg, run_dir: pytest.fail("trained the first rows"))


def compose_row_for_test(table, row):
    from zoo.tables.runs import compose_row

    return compose_row(row, table["protocols"]["synthetic"]["overrides"], 0, [], "experiment")


def test_the_scatter_names_points_that_cluster_without_covering_one_another():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    points = [("ssd_lite", 20.9, 87.29), ("fpn_lite", 37.6, 88.18), ("faster_rcnn_lite", 39.5, 86.85),
              ("refinedet_lite", 45.6, 87.46), ("cornernet_lite", 100.7, 65.76)]
    ax.plot([x for _, x, _ in points], [y for _, _, y in points], "o")
    boxes = label_points_apart(ax, points)
    assert [t.get_text() for t in ax.texts] == ["fpn_lite", "refinedet_lite", "ssd_lite", "faster_rcnn_lite",
                                                "cornernet_lite"]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    for box, (name, x, y) in zip(boxes, sorted(points, key=lambda p: -p[2])):
        others = [ax.transData.transform((ox, oy)) for other, ox, oy in points if other != name]
        assert not any(box.contains(*point) for point in others)


def test_the_road_to_faster_rcnn_carries_the_papers_speeds_and_the_proposals_time_apart(tmp_path):
    minutes = {"rcnn": 30, "spp_net": 20, "fast_rcnn": 25, "faster_rcnn": 40, "fpn": 50}

    def fake_train(cfg, run_dir):
        row = run_dir.parent.name.removeprefix("rcnn_progression_")
        assert (cfg.model.get("proposals") == "selective_search") == (row in ("rcnn", "spp_net", "fast_rcnn"))
        run_dir.mkdir(parents=True, exist_ok=True)
        given = None if cfg.model.get("proposals") is None else 1500.0
        (run_dir / "latency.json").write_text(json.dumps({"ms_per_image": 10.0 * len(row),
                                                          "proposal_ms_per_image": given, "machine": "machine: A"}))
        return {"metrics": {"voc07_map50": 0.8}, "train_seconds": 60.0 * minutes[row]}

    table = _table("rcnn_progression")
    rows = reproduce(table, "bccd", 1, tmp_path, train=fake_train, latency=lambda d: 10.0 * len(d.parent.name[17:]))
    assert [(r.paper, r.paper_train_hours, r.paper_test_seconds, r.paper_proposal_seconds) for r in rows] == [
        (66.0, 84, 47.0, 1.51), (63.1, 25, 2.3, 1.51), (66.9, 9.5, 0.32, 1.51), (69.9, None, 0.198, None),
        (None, None, None, None)]
    assert [r.proposal_ms for r in rows] == [1500.0, 1500.0, 1500.0, None, None]
    assert [r.settings for r in rows[:3]] == ["model=rcnn_lite, trainer/stages=rcnn_svm",
                                              "model=spp_lite, trainer/stages=spp_net", "model=fast_rcnn_lite"]
    text = Path(write_table(rows, table, "bccd", 1, tmp_path, "zoo-reproduce")["md"]).read_text()
    assert ("| ms / image | paper s / image | proposals ms / image | paper proposals s / image | train min | "
            "paper train h |") in text
    assert "| 40.0 | 47.0 | 1500.0 | 1.51 | 30.0 | 84 |" in text  # rcnn: ours beside the paper's
    assert "| 110.0 | 0.198 | - | - | 40.0 | - |" in text  # faster_rcnn: its proposals are in its network
    assert "Times faster than `rcnn_progression_rcnn` (the paper's / ours):" in text
    assert "- training time: rcnn_progression_spp_net 3.36x / 1.5x; rcnn_progression_fast_rcnn 8.84x / 1.2x" in text
    assert "excluded (an RPN's is part of its network): rcnn_progression_spp_net 20.4x / 0.571x;" in text
    assert "- test time per image, proposals included: rcnn_progression_spp_net 12.7x / 0.981x;" in text


def test_a_detector_of_given_proposals_is_timed_with_its_proposals_apart(compose_cfg, tmp_path):
    from zoo.apis.latency import checkpoint_timing
    from zoo.engine.trainer import Trainer

    Trainer(compose_cfg(*TINY, "model=fast_rcnn_lite", "trainer.max_iters=1", "trainer.eval_every=0",
                        "data.eval_images=2"), tmp_path).fit()
    timing = checkpoint_timing(str(tmp_path / "checkpoints" / "last.pt"), split="val", num_images=2, warmup=1)
    assert timing["ms_per_image"] > 0 and timing["proposal_ms_per_image"] > 0  # selective search's, from its file
    plain = tmp_path / "plain"
    Trainer(compose_cfg(*TINY, "trainer.max_iters=1", "trainer.eval_every=0", "data.eval_images=2"), plain).fit()
    assert checkpoint_timing(str(plain / "checkpoints" / "last.pt"), "val", 2, 1)["proposal_ms_per_image"] is None
