import json

import cv2
import pytest
import torch
from omegaconf import OmegaConf, open_dict

from tests.conftest import TINY
from zoo.engine.checkpoint import load_checkpoint
from zoo.engine.hooks import NonFiniteLossError, Validation
from zoo.engine.trainer import Trainer


def test_short_train_and_eval_writes_the_run_outputs(compose_cfg, tmp_path):
    cfg = compose_cfg(*TINY, "trainer.max_epochs=2", "trainer.eval_every=1", "trainer.plots=true")
    results = Trainer(cfg, tmp_path).fit()
    assert results["steps"] == 8 and 0.0 <= results["metrics"]["voc07_map50"] <= 1.0
    assert set(results["per_class"]["voc07_map50"]) == {"circle", "square", "triangle", "cross", "ring"}
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["metrics"] == results["metrics"] and saved["model"] == "ssd_lite" and "cores, cpu" in saved["machine"]
    assert saved["train_dtype"] in ("bfloat16", "float32")
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if x["kind"] == "train"] == list(range(1, 9))
    assert any(x["kind"] == "val" for x in lines)
    for name in ("last.pt", "best.pt"):
        state = load_checkpoint(tmp_path / "checkpoints" / name)
        assert state["class_names"][0] == "circle"
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["step"] == 8
    resolved = OmegaConf.load(tmp_path / "config.yaml")
    assert resolved.data.train.image_size == 128 and "${" not in (tmp_path / "config.yaml").read_text()
    assert list((tmp_path / "plots").glob("*.png")) and cv2.imread(str(tmp_path / "plots" / "detections.png")) is not None


class _Interrupt(Exception):
    pass


class _StopAt:
    def __init__(self, step: int):
        self.step = step

    def after_step(self, trainer):
        if trainer.step == self.step:
            raise _Interrupt


class _Draw:
    def after_step(self, trainer):
        torch.rand(1)


def test_resume_after_interrupt_matches_an_uninterrupted_run(compose_cfg, tmp_path):
    common = (*TINY, "trainer.max_epochs=2", "trainer.eval_every=0", "trainer.checkpoint_every=1")
    whole = Trainer(compose_cfg(*common), tmp_path / "whole")
    whole.fit()

    # mid-way through epoch 2; each step also draws from torch's stream (ssd_lite's training itself does not), so the
    # checkpoint's random state is not the one a fresh start reaches
    cut = Trainer(compose_cfg(*common), tmp_path / "cut", hooks=[_Draw(), _StopAt(6)])
    with pytest.raises(_Interrupt):
        cut.fit()
    torch.manual_seed(123)  # another stream: the resume must bring back the checkpoint's
    resumed = Trainer(compose_cfg(*common, "resume=true"), tmp_path / "cut")
    assert resumed.step == 6
    saved = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")["rng"]
    assert torch.equal(torch.get_rng_state(), (saved[0] if isinstance(saved, list) else saved)["torch"])
    resumed.fit()
    for (name, a), (_, b) in zip(whole.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name


def test_a_crash_in_an_epochs_evaluation_resumes_before_that_epoch_ends(compose_cfg, tmp_path):
    """checkpoint_every must not save the epoch's last step ahead of its evaluation: a crash there would
    resume past the evaluation (and its chance at best.pt)."""
    trainer = Trainer(compose_cfg(*TINY, "trainer.max_epochs=2", "trainer.eval_every=1", "trainer.checkpoint_every=1"),
                      tmp_path)

    def crash(trainer):
        raise _Interrupt

    next(h for h in trainer.hooks if isinstance(h, Validation)).validate = crash
    with pytest.raises(_Interrupt):
        trainer.fit()
    assert trainer.step == 4 and load_checkpoint(tmp_path / "checkpoints" / "last.pt")["step"] == 3


def test_a_nan_validation_score_never_becomes_the_best(compose_cfg, tmp_path, monkeypatch):
    scores = iter([float("nan"), 0.25])  # epoch 1's evaluation, then the final one
    fake = {"per_class": {}, "tables": []}
    monkeypatch.setattr("zoo.engine.hooks.evaluation.evaluate_model",
                        lambda *args, **kwargs: {**fake, "metrics": {"voc07_map50": next(scores)}})
    trainer = Trainer(compose_cfg(*TINY, "trainer.max_epochs=2", "trainer.eval_every=1"), tmp_path)
    trainer.fit()
    assert trainer.best == {"voc07_map50": 0.25, "step": 8}


def test_non_finite_loss_names_the_term_and_keeps_the_last_checkpoint(compose_cfg, tmp_path):
    cfg = compose_cfg(*TINY, "trainer.max_epochs=2", "trainer.eval_every=0")

    class _Poison:
        def after_epoch(self, trainer):  # after epoch 1 has saved last.pt, break the model
            with torch.no_grad():
                trainer.model.head.box[0].weight.fill_(float("nan"))

    trainer = Trainer(cfg, tmp_path, hooks=[_Poison()])
    with pytest.raises(NonFiniteLossError, match=r"step 5: ssd/loc=nan"):
        trainer.fit()
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["step"] == 4 and torch.isfinite(state["model"]["head.box.0.weight"]).all()


def test_non_finite_gradient_stops_the_run_without_grad_clip(compose_cfg, tmp_path):
    cfg = compose_cfg(*TINY, "trainer.max_epochs=1", "trainer.eval_every=0", "trainer.grad_clip=null",
                      "trainer.checkpoint_every=1")

    class _PoisonGradient:
        def after_step(self, trainer):  # finite losses, NaN gradients from step 3 on
            if trainer.step == 2:
                trainer.model.head.box[0].weight.register_hook(lambda g: torch.full_like(g, float("nan")))

    with pytest.raises(NonFiniteLossError, match=r"non-finite gradient norm at step 3"):
        Trainer(cfg, tmp_path, hooks=[_PoisonGradient()]).fit()
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["step"] == 2 and all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_checkpoints_are_readable_by_whoever_may_read_new_files(compose_cfg, tmp_path):
    import os

    Trainer(compose_cfg(*TINY, "trainer.max_iters=1", "trainer.eval_every=0"), tmp_path).fit()
    umask = os.umask(0)
    os.umask(umask)
    for path in (tmp_path / "checkpoints" / "last.pt", tmp_path / "results.json"):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path


def test_unknown_loss_weight_is_reported(compose_cfg, tmp_path):
    cfg = compose_cfg(*TINY, "trainer.max_epochs=1", "++trainer.loss_weights={ssd/clss:2.0}")
    with pytest.raises(ValueError, match=r"loss_weights names \['ssd/clss'\].*ssd/cls"):
        Trainer(cfg, tmp_path).fit()


def test_resume_without_checkpoint_explains(compose_cfg, tmp_path):
    with pytest.raises(FileNotFoundError, match="resume: no checkpoint"):
        Trainer(compose_cfg(*TINY, "resume=true"), tmp_path)


def test_loss_weights_scale_the_logged_total(compose_cfg, tmp_path):
    cfg = compose_cfg(*TINY, "trainer.max_iters=1", "++trainer.loss_weights={ssd/loc:0.0}")
    trainer = Trainer(cfg, tmp_path)
    batch = next(iter(trainer.train_loader))
    values = trainer.run_step(batch)
    assert values["loss"] == pytest.approx(values["ssd/cls"])


def test_evaluating_the_checkpoint_reproduces_the_final_number(compose_cfg, tmp_path):
    from omegaconf import OmegaConf

    from zoo.apis.evaluate import evaluate_checkpoint
    from zoo.apis.run import TrainedRun

    results = Trainer(compose_cfg(*TINY, "trainer.max_epochs=1", "trainer.eval_every=0"), tmp_path).fit()
    cfg = OmegaConf.create({"checkpoint": str(tmp_path / "checkpoints" / "last.pt"), "split": "test",
                            "device": "cpu", "batch_size": 3, "data_root": None, "plots": False,
                            "precision": "fp32", "evaluator": None})
    again = evaluate_checkpoint(cfg)
    assert again["metrics"] == results["metrics"]
    assert again["split"] == results["split"] == "val"  # synthetic data has no test split: val was scored
    # By default zoo-eval batches as the trainer evaluated (keep-ratio padding depends on the batch).
    assert TrainedRun(cfg.checkpoint, "cpu").loader("val").batch_size == 4


def test_bf16_evaluation_warns_on_a_cpu_without_bfloat16_instructions(compose_cfg, tmp_path, monkeypatch, caplog):
    from omegaconf import OmegaConf

    from zoo.apis.evaluate import evaluate_checkpoint

    Trainer(compose_cfg(*TINY, "trainer.max_iters=1", "trainer.eval_every=0"), tmp_path).fit()
    monkeypatch.setattr("zoo.apis.evaluate.cpu_has_native_bfloat16", lambda: False)
    cfg = OmegaConf.create({"checkpoint": str(tmp_path / "checkpoints" / "last.pt"), "split": "val",
                            "device": "cpu", "batch_size": 4, "data_root": None, "plots": False,
                            "precision": "bf16", "evaluator": None})
    with caplog.at_level("WARNING", logger="zoo.eval"):
        assert evaluate_checkpoint(cfg)["precision"] == "bf16"
    assert "no bfloat16 instructions" in caplog.text


def test_resume_with_another_config_is_refused(compose_cfg, tmp_path):
    cfg = compose_cfg(*TINY, "trainer.max_iters=1", "trainer.eval_every=0")
    with open_dict(cfg):
        cfg.overrides = ["trainer.max_iters=1"]  # as zoo-train records them
    Trainer(cfg, tmp_path).fit()
    with pytest.raises(ValueError, match=r"resume: the config differs .*\['seed', 'trainer.batch_size'\].*"
                                         r"overrides \['trainer.max_iters=1'\]"):
        Trainer(compose_cfg(*TINY, "trainer.max_iters=1", "seed=3", "trainer.batch_size=2", "resume=true"), tmp_path)
    # the worker count only changes how fast samples load, not which: resuming with another is fine
    resumed = Trainer(compose_cfg(*TINY, "trainer.max_iters=1", "trainer.eval_every=0", "data.num_workers=1",
                                  "resume=true"), tmp_path)
    assert resumed.step == 1


def test_resume_across_a_code_change_that_added_a_key_warns_and_continues(compose_cfg, tmp_path, caplog):
    Trainer(compose_cfg(*TINY, "trainer.max_iters=1", "trainer.eval_every=0"), tmp_path).fit()
    path = tmp_path / "checkpoints" / "last.pt"
    state = load_checkpoint(path)
    stored = OmegaConf.create(state["config"])
    del stored.model.test["topk_per_class"]  # as if the run started before the key existed
    state["config"] = OmegaConf.to_yaml(stored)
    torch.save(state, path)
    resumed = Trainer(compose_cfg(*TINY, "trainer.max_iters=1", "trainer.eval_every=0", "resume=true"), tmp_path)
    assert resumed.step == 1 and "['model']" in caplog.text and "do not share" in caplog.text
    stored.model.test.nms_threshold = 0.3  # a key both have, with another value: another run
    state["config"] = OmegaConf.to_yaml(stored)
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"resume: the config differs .*\['model'\]"):
        Trainer(compose_cfg(*TINY, "trainer.max_iters=1", "resume=true"), tmp_path)


def test_resume_from_a_checkpoint_without_training_state_names_what_is_missing(compose_cfg, tmp_path):
    Trainer(compose_cfg(*TINY, "trainer.max_iters=1", "trainer.eval_every=0"), tmp_path).fit()
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    del state["optimizer"]
    torch.save(state, tmp_path / "weights_only.pt")
    with pytest.raises(ValueError, match=r"weights_only.pt.*lacks \['optimizer'\]"):
        Trainer(compose_cfg(*TINY, f"resume={tmp_path / 'weights_only.pt'}"), tmp_path / "again")


def test_paper_figure_sits_beside_the_measured_one(compose_cfg):
    from omegaconf import OmegaConf

    from zoo.engine.hooks import paper_figure

    cfg = compose_cfg("data=bccd")
    assert paper_figure(cfg, {"voc07_map50": 0.5}) is None
    OmegaConf.update(cfg, "paper", {"metric": "voc07_map50", "value": 80.0, "verified": True, "data": "voc0712"},
                     force_add=True)
    figure = paper_figure(cfg, {"voc07_map50": 0.81234})
    assert figure["measured"] == 81.23 and figure["value"] == 80.0 and figure["same_data"] is False
    cfg.paper.metric = "coco_ap"
    assert paper_figure(cfg, {"voc07_map50": 0.5})["measured"] is None


def test_a_trained_run_merges_data_overrides_into_the_stored_config(compose_cfg, tmp_path):
    from zoo.apis.run import TrainedRun

    Trainer(compose_cfg(*TINY, "trainer.max_iters=1", "trainer.eval_every=0"), tmp_path).fit()
    checkpoint = str(tmp_path / "checkpoints" / "last.pt")
    trained = TrainedRun(checkpoint, "cpu", data_overrides={"val": {"ignore_below_size": 1e6}})
    loader, run_cfg = trained.loader("val", 2), trained.run.cfg
    assert run_cfg.data.val.ignore_below_size == 1e6
    anns = [loader.dataset.get_annotation(i) for i in range(len(loader.dataset))]
    assert sum(len(a["ignore"]) for a in anns) > 0 and all(a["ignore"].all() for a in anns)
    loader = TrainedRun(checkpoint, "cpu").loader("val", 2)
    assert not any(loader.dataset.get_annotation(i)["ignore"].any() for i in range(len(loader.dataset)))


@pytest.mark.parametrize("native, expected", [(True, torch.bfloat16), (False, None)])
def test_cpu_autocast_only_where_the_cpu_has_bfloat16_instructions(compose_cfg, tmp_path, monkeypatch, native,
                                                                   expected):
    # without AVX-512 BF16 or AMX, bfloat16 convolutions fall back to reference kernels many times slower
    monkeypatch.setattr("zoo.engine.trainer.cpu_has_native_bfloat16", lambda: native)
    assert Trainer(compose_cfg(*TINY), tmp_path).amp_dtype == expected
    assert Trainer(compose_cfg(*TINY, "trainer.amp=false"), tmp_path / "off").amp_dtype is None


class _GradNorm:
    def __init__(self):
        self.norms = []

    def after_step(self, trainer):  # the step's gradients stay until the next step zeroes them
        grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
        self.norms.append(float(torch.nn.utils.get_total_norm(grads)))


def test_gradients_are_clipped_to_the_total_norm_given(compose_cfg, tmp_path):
    seen = {}
    for clip in (0.0, 0.01):
        hook = _GradNorm()
        Trainer(compose_cfg(*TINY, "trainer.max_iters=1", "trainer.eval_every=0", f"trainer.grad_clip={clip}"),
                tmp_path / str(clip), hooks=[hook]).fit()
        seen[clip] = hook.norms[0]
    assert seen[0.0] > 0.01 and seen[0.01] == pytest.approx(0.01, rel=1e-3)
