"""Commands that run as written: resuming a run folder by itself, Ctrl-C in one line, data roots that do not
depend on the folder a command runs from."""
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import TINY
from zoo.cli import reports_bad_input
from zoo.config.paths import PROJECT
from zoo.config.run import RunConfig
from zoo.engine.resume import config_to_resume, override_keys
from zoo.engine.trainer import Trainer, TrainingInterrupted


def test_resuming_a_run_folder_takes_its_stored_config_without_its_overrides(tmp_path):
    run = tmp_path / "run"
    first = subprocess.run([sys.executable, "-m", "zoo.cli.train", *TINY, "trainer.max_iters=2", "trainer.eval_every=0",
                            "seed=3", f"hydra.run.dir={run}"], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-2000:]
    again = subprocess.run([sys.executable, "-m", "zoo.cli.train", "resume=true", "trainer.progress=false",
                            f"hydra.run.dir={run}"], capture_output=True, text=True, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resumed from" in again.stdout + again.stderr and OmegaConf.load(run / "config.yaml").seed == 3


def test_an_override_that_changes_the_run_is_refused_by_name_on_resume(compose_cfg, tmp_path):
    Trainer(compose_cfg(*TINY, "trainer.max_iters=2", "trainer.eval_every=0", "seed=3"), tmp_path).fit()
    overrides = ["resume=true", "seed=4", "trainer.progress=false"]
    cfg = config_to_resume(compose_cfg(*overrides), overrides, tmp_path)
    assert cfg.data.train.num_images == 16 and cfg.seed == 4 and cfg.trainer.progress is False
    refused = r"differs from the one stored in .*last.pt in \['seed'\]; the run was started with .* a resumed run keeps"
    with pytest.raises(ValueError, match=refused):
        Trainer(cfg, tmp_path)


def test_override_keys_name_what_a_command_sets():
    assert override_keys(["resume=true", "+a.b=1", "~c", "trainer/optimizer=sgd", "hydra.run.dir=x", "d=2"]) == [
        "a.b", "c", "trainer.optimizer", "d"]


def test_ctrl_c_ends_training_in_one_line_saying_what_was_kept_and_how_to_go_on(compose_cfg, tmp_path, capsys):
    class _CtrlC:
        def after_step(self, trainer):
            if trainer.step == 3:
                raise KeyboardInterrupt

    trainer = Trainer(compose_cfg(*TINY, "trainer.max_epochs=2", "trainer.eval_every=0", "trainer.checkpoint_every=2"),
                      tmp_path, hooks=[_CtrlC()])

    @reports_bad_input("zoo-train")
    def main():
        trainer.fit()

    with pytest.raises(SystemExit) as stopped:
        main()
    err = capsys.readouterr().err
    assert stopped.value.code == 130 and err.count("\n") == 1 and "Traceback" not in err
    assert f"interrupted at step 3: the last good checkpoint, {tmp_path}/checkpoints/last.pt (step 2), is kept" in err
    assert f"zoo-train resume=true hydra.run.dir={tmp_path}" in err
    assert issubclass(TrainingInterrupted, KeyboardInterrupt)


def test_a_relative_data_root_is_the_projects_not_the_working_folders(compose_cfg, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    run = RunConfig.from_composed(compose_cfg("data=bccd", "trainer=cpu_bccd"))
    expected = str((PROJECT / "../shared/datasets/bccd").resolve())
    assert run.data.root == expected and run.data.train.root == expected and Path(run.data.test.root).is_absolute()
    absolute = RunConfig.from_composed(compose_cfg("data=bccd", "trainer=cpu_bccd", "data.root=/data/bccd"))
    assert absolute.data.train.root == "/data/bccd"


def test_the_commands_printed_after_training_compose_as_printed(compose_cfg, tmp_path):
    import shlex

    from zoo.engine.hooks.report import next_steps

    commands = [line.split("#")[0].strip() for line in next_steps(tmp_path, "ssd_lite") if line.startswith("  zoo-")]
    configs = {"zoo-eval": "eval", "zoo-predict": "predict", "zoo-train": "train"}
    assert [c.split()[0] for c in commands] == ["zoo-eval", "zoo-predict", "zoo-train"]
    for command in commands:
        words = shlex.split(command)
        cfg = compose_cfg(*words[1:], config_name=configs[words[0]])
        assert cfg is not None
    assert str(tmp_path / "checkpoints" / "last.pt") in commands[0]
    assert "model=ssd_lite data=bccd" in next_steps(tmp_path, "ssd_demo")[-1]


def test_a_misspelt_key_is_answered_with_the_nearest_real_one(monkeypatch, capsys):
    from zoo.cli import misspelt_keys, suggests_keys

    hints = misspelt_keys("train", ["trainer.max_epoch=3", "model=fpn_lite", "model.rpn.train.pre_nms_topn=5",
                                    "+extra.key=1", "seed=2", "hydra.run.dir=x"])
    assert hints == ["did you mean trainer.max_epochs? ('trainer.max_epoch' is not a key of the config)",
                     "did you mean model.rpn.train.pre_nms_top_n? ('model.rpn.train.pre_nms_topn' is not a key of the "
                     "config)"]

    @suggests_keys("train")
    def hydra_refuses():
        raise SystemExit(1)

    monkeypatch.setattr(sys, "argv", ["zoo-train", "trainer.log_evry=5"])
    with pytest.raises(SystemExit):
        hydra_refuses()
    assert "did you mean trainer.log_every?" in capsys.readouterr().err


def test_a_smoke_run_is_one_flag_and_scores_a_few_images(compose_cfg, tmp_path):
    import json

    results = Trainer(compose_cfg(*TINY, "trainer.smoke=true", "trainer.tensorboard=true"), tmp_path).fit()
    assert results["steps"] == 20 and results["eval_images"] == 16
    assert not (tmp_path / "plots").exists() and not (tmp_path / "tensorboard").exists()
    small = Trainer(compose_cfg(*TINY, "trainer.max_iters=1", "data.eval_images=3"), tmp_path / "small").fit()
    full = json.loads((tmp_path / "results.json").read_text())  # 8 val images, all of them scored (16 > 8)
    objects = lambda r: sum(c["num_gt"] for c in r["per_class"]["voc07_map50"].values())  # noqa: E731
    assert 0 < objects(small) < objects(full)


def test_a_group_that_sets_the_whole_config_is_compared_whole_on_resume(compose_cfg, tmp_path):
    Trainer(compose_cfg(*TINY, "trainer.max_iters=1", "trainer.eval_every=0"), tmp_path).fit()
    overrides = ["resume=true", "experiment=refinedet320_table3_no_tcb"]
    with pytest.raises(ValueError, match=r"resume: experiment= composes a config that differs from the run .*'model'"):
        config_to_resume(compose_cfg(*overrides), overrides, tmp_path)


def test_a_run_scored_on_a_few_images_is_loaded_to_score_its_whole_split(compose_cfg, tmp_path):
    from zoo.apis.run import TrainedRun

    Trainer(compose_cfg(*TINY, "trainer.max_iters=1", "data.eval_images=3"), tmp_path).fit()
    trained = TrainedRun(tmp_path / "checkpoints" / "last.pt", "cpu")
    assert trained.run.data.eval_images is None and len(list(trained.loader("val", 2))) == 4  # all 8 images
