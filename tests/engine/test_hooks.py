"""Each trainer hook on its own (against a stand-in trainer), and hooks chosen and extended from the config."""
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from tests.conftest import TINY
from zoo.config.schema import DEFAULT_HOOKS, TrainerConfig
from zoo.engine.hooks import (HOOKS, FinalReport, HookBase, MetricsLog, NaNGuard, NonFiniteLossError,
                              PeriodicCheckpoint, ProgressBar, StagesHook, Validation, build_hooks)
from zoo.engine.stages import StageSchedule
from zoo.engine.trainer import Trainer
from zoo.registry import ConfigError


def _trainer(tmp_path: Path, **settings) -> SimpleNamespace:
    """A stand-in trainer: what the hooks read, and a record of what they asked it to save."""
    saved = []
    tcfg = OmegaConf.merge(OmegaConf.structured(TrainerConfig), settings)
    return SimpleNamespace(tcfg=tcfg, step=0, total_iters=8, iters_per_epoch=4, is_main=True, run_dir=tmp_path,
                           losses={"loss": 1.0}, lr=0.1, images_per_s=5.0, ends_epoch=False, best={}, saved=saved,
                           save=saved.append, scaler=torch.amp.GradScaler("cuda", enabled=False),
                           call_hooks=lambda *args: None, kept_checkpoint=lambda: "no checkpoint kept")


def test_the_default_hooks_are_built_in_order_and_a_node_may_pass_arguments():
    hooks = build_hooks(DEFAULT_HOOKS)
    assert [type(h) for h in hooks] == [StagesHook, NaNGuard, ProgressBar, MetricsLog, Validation,
                                        PeriodicCheckpoint, FinalReport]
    assert [type(h) for h in build_hooks([{"type": "checkpoint"}, "nan_guard"])] == [PeriodicCheckpoint, NaNGuard]


def test_an_unknown_hook_is_named_with_its_place_and_the_known_names():
    with pytest.raises(ConfigError, match=r"trainer.hooks\[1\]: unknown trainer hook type 'nan_gaurd'.*nan_guard"):
        build_hooks(["checkpoint", "nan_gaurd"])


def test_the_stages_hook_enters_each_stage_and_clears_the_optimizer_state_as_it_begins(tmp_path):
    model = nn.Sequential()
    model.add_module("rpn", nn.Linear(2, 2))
    model.add_module("roi", nn.Linear(2, 2))
    stages = StageSchedule([{"name": "a", "fraction": 0.5, "train": ["rpn"], "losses": ["rpn/"]},
                            {"name": "b", "fraction": 0.5, "train": ["roi"], "losses": ["roi/"]}], model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    trainer = SimpleNamespace(**vars(_trainer(tmp_path)), stages=stages, model=model, optimizer=optimizer, stage=None)
    hook = StagesHook()
    for step in range(4):
        trainer.step = step
        optimizer.state[model.rpn.weight] = {"momentum_buffer": torch.ones(2, 2)}  # what a step leaves behind
        hook.before_step(trainer)
        assert trainer.stage.name == "a" and bool(optimizer.state) == (step > 0)  # cleared as stage a began
    trainer.step = 4
    hook.before_step(trainer)
    assert trainer.stage.name == "b" and not optimizer.state  # a new stage starts afresh
    assert not model.rpn.weight.requires_grad and model.roi.weight.requires_grad


def test_the_nan_guard_stops_before_the_weights_change(tmp_path):
    trainer, guard = _trainer(tmp_path), NaNGuard()
    guard.after_loss(trainer, {"a": torch.tensor(1.0)}, torch.tensor(1.0))
    with pytest.raises(NonFiniteLossError, match=r"step 1: b=nan"):
        guard.after_loss(trainer, {"a": torch.tensor(1.0), "b": torch.tensor(float("nan"))}, torch.tensor(float("nan")))
    with pytest.raises(NonFiniteLossError, match="non-finite gradient norm at step 1"):
        guard.after_backward(trainer, torch.tensor(float("inf")))
    guard.after_backward(trainer, None)  # not computed: nothing to check
    trainer.scaler = SimpleNamespace(is_enabled=lambda: True)  # float16 loss scaling skips such a step itself
    guard.after_backward(trainer, torch.tensor(float("inf")))


def test_the_progress_bar_counts_steps_from_where_the_run_starts(tmp_path):
    trainer, bar = _trainer(tmp_path, progress=True), ProgressBar()
    trainer.step = 3  # resumed
    bar.before_train(trainer)
    bar.after_step(trainer)
    assert bar.bar.n == 4 and bar.bar.total == 8
    bar.close(trainer)
    assert bar.bar is None


def test_the_metrics_log_writes_every_log_every_steps_the_last_and_each_validation(tmp_path):
    trainer, log = _trainer(tmp_path, log_every=3, tensorboard=False), MetricsLog()
    log.before_train(trainer)
    for step in range(1, 9):
        trainer.step = step
        log.after_step(trainer)
    log.after_validation(trainer, {"metrics": {"voc07_map50": 0.5}})
    log.close(trainer)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(x["kind"], x["step"]) for x in lines] == [("train", 3), ("train", 6), ("train", 8), ("val", 8)]
    assert lines[0]["epoch"] == 0.75 and lines[-1]["voc07_map50"] == 0.5


def test_the_checkpoint_hook_saves_within_an_epoch_but_leaves_the_epochs_end_to_after_its_evaluation(tmp_path):
    trainer, hook = _trainer(tmp_path, checkpoint_every=2), PeriodicCheckpoint()
    for step in range(1, 5):
        trainer.step, trainer.ends_epoch = step, step == 4
        hook.after_step(trainer)
    assert trainer.saved == ["last.pt"]  # step 2; step 4 ends the epoch
    hook.after_epoch(trainer)
    hook.after_train(trainer)
    assert trainer.saved == ["last.pt"] * 3


def test_validation_runs_every_eval_every_epochs_and_once_at_the_end(tmp_path, monkeypatch):
    trainer, hook, seen = _trainer(tmp_path, eval_every=2), Validation(), []
    monkeypatch.setattr(hook, "validate", lambda t: seen.append(t.step))
    trainer.total_iters = 16  # four epochs of four steps
    for step in (4, 8, 12, 16):
        trainer.step = step
        hook.after_epoch(trainer)
    hook.after_train(trainer)
    assert seen == [8, 16]  # epoch 2; the last epoch is validated once, by after_train


class _Counts(HookBase):
    def __init__(self, every: int = 1):
        self.every, self.steps = every, []

    def after_step(self, trainer):
        if trainer.step % self.every == 0:
            self.steps.append(trainer.step)


def test_hooks_are_chosen_and_extended_from_the_config(compose_cfg, tmp_path):
    HOOKS.register("test_counts")(_Counts)
    cfg = compose_cfg(*TINY, "trainer.max_iters=4", "trainer.hooks=[nan_guard,checkpoint,{type: test_counts, every: 2}]")
    trainer = Trainer(cfg, tmp_path)
    assert trainer.fit() == {}  # no report hook: no record, no results.json
    assert trainer.hooks[-1].steps == [2, 4]
    assert (tmp_path / "checkpoints" / "last.pt").is_file() and not (tmp_path / "checkpoints" / "best.pt").exists()
    assert not (tmp_path / "results.json").exists() and not (tmp_path / "metrics.jsonl").exists()


def test_the_report_scores_the_test_split_itself_without_the_validation_hook(compose_cfg, tmp_path):
    cfg = compose_cfg(*TINY, "trainer.max_iters=2", "trainer.hooks=[checkpoint,report]")
    results = Trainer(cfg, tmp_path).fit()
    assert results["steps"] == 2 and 0.0 <= results["metrics"]["voc07_map50"] <= 1.0
    assert json.loads((tmp_path / "results.json").read_text())["metrics"] == results["metrics"]


def test_stages_without_the_stages_hook_are_refused(compose_cfg, tmp_path):
    cfg = compose_cfg(*TINY, "model=faster_rcnn_lite", "trainer/stages=four_step", "trainer.hooks=[checkpoint]")
    with pytest.raises(ValueError, match="trainer.stages is set but trainer.hooks has no 'stages' hook"):
        Trainer(cfg, tmp_path)
