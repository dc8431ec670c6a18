"""Faults during training and in what a run leaves behind: a diverging run, two runs in one folder, a save that
fails, a killed save's leftovers, a resumed run's log, a tampered stored config, a killed loader worker."""
import json
import os
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from tests.conftest import TINY
from zoo.apis.run import TrainedRun
from zoo.cli import reports_bad_input
from zoo.engine.checkpoint import load_checkpoint, save_checkpoint
from zoo.engine.hooks import NonFiniteLossError
from zoo.engine.run_folder import RunFolderBusy, RunLock
from zoo.engine.trainer import Trainer
from zoo.registry import ConfigError

SHORT = (*TINY, "trainer.max_epochs=2", "trainer.eval_every=0", "trainer.checkpoint_every=1")


class _PoisonBuffer:
    """After step ``at``'s save, an infinite BatchNorm running variance (the training forward does not read it, so
    the loss stays finite, as when a huge learning rate blows up the statistics)."""

    def __init__(self, at: int):
        self.at = at

    def after_step(self, trainer):
        if trainer.step == self.at:
            bn = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.BatchNorm2d))
            bn.running_var.fill_(float("inf"))


def test_weights_that_are_not_finite_are_never_saved_and_the_stop_names_what_is_kept(compose_cfg, tmp_path):
    trainer = Trainer(compose_cfg(*SHORT), tmp_path, hooks=[_PoisonBuffer(3)])
    with pytest.raises(NonFiniteLossError, match=r"non-finite weights at step 4 \(.*running_var.*\), not saved as "
                                                 r"last.pt; the last good checkpoint, .*last.pt \(step 3\), is kept"):
        trainer.fit()
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["step"] == 3 and all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_a_stop_before_any_save_says_no_checkpoint_was_kept(compose_cfg, tmp_path):
    class _Nan:
        def before_train(self, trainer):
            with torch.no_grad():
                trainer.model.head.box[0].weight.fill_(float("nan"))

    with pytest.raises(NonFiniteLossError, match="step 1: .*no checkpoint of this run was saved before it"):
        Trainer(compose_cfg(*SHORT), tmp_path, hooks=[_Nan()]).fit()


def _poisoned_copy(checkpoint, path):
    state = load_checkpoint(checkpoint)
    key = next(k for k, v in state["model"].items() if k.endswith("running_var"))
    state["model"][key].fill_(float("inf"))
    save_checkpoint(torch.load(checkpoint, weights_only=True) | {"model": state["model"]}, path)
    return key


def test_evaluation_and_resume_refuse_a_checkpoint_that_is_not_finite(compose_cfg, tmp_path):
    Trainer(compose_cfg(*TINY, "trainer.max_iters=2", "trainer.eval_every=0"), tmp_path / "run").fit()
    poisoned = tmp_path / "poisoned.pt"
    key = _poisoned_copy(tmp_path / "run" / "checkpoints" / "last.pt", poisoned)
    with pytest.raises(ValueError, match=rf"checkpoint '.*poisoned.pt' holds non-finite values in 1 tensor\(s\) \({key}"):
        TrainedRun(poisoned, "cpu")
    with pytest.raises(ValueError, match="poisoned.pt' holds non-finite values"):
        Trainer(compose_cfg(*TINY, "trainer.max_iters=4", "trainer.eval_every=0", f"resume={poisoned}"),
                tmp_path / "again")


def test_a_second_run_in_a_folder_held_by_a_live_process_is_refused_naming_it(compose_cfg, tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / ".lock").write_text(json.dumps({"pid": holder.pid, "host": os.uname().nodename}))
        with pytest.raises(RunFolderBusy, match=rf"in use by process {holder.pid} on "):
            Trainer(compose_cfg(*SHORT), tmp_path)
        assert not (tmp_path / "config.yaml").exists()  # refused before writing anything
    finally:
        holder.kill()
        holder.wait()
    trainer = Trainer(compose_cfg(*SHORT), tmp_path)  # the holder is gone: its stale lock is taken over
    assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    trainer.lock.release()
    assert not (tmp_path / ".lock").exists()


def test_the_lock_is_released_when_training_ends(compose_cfg, tmp_path):
    Trainer(compose_cfg(*TINY, "trainer.max_iters=1", "trainer.eval_every=0"), tmp_path).fit()
    assert not (tmp_path / ".lock").exists()
    lock = RunLock(tmp_path)
    lock.acquire()
    lock.acquire()  # this process again (a second trainer of the Python API): no refusal
    lock.release()


def test_a_run_folder_that_cannot_be_written_is_refused_before_training(compose_cfg, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match=r"run folder .*file is not writable .*hydra.run.dir"):
        Trainer(compose_cfg(*SHORT), blocker)


def test_a_failed_save_is_one_line_and_the_previous_checkpoint_stays(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"step": 1}, path)

    def full_disk(obj, f, *args, **kwargs):
        open(f, "wb").write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(ValueError, match=r"could not save checkpoint .*last.pt \(RuntimeError: .*unexpected pos.*\); "
                                         r"the previous last.pt is intact"):
        save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path, required=("step",))["step"] == 1 and not list(tmp_path.glob("*.tmp"))


def test_a_killed_saves_leftovers_are_removed_when_the_folder_is_next_trained(compose_cfg, tmp_path):
    orphan = tmp_path / "checkpoints" / "last.pt3k2j9x.tmp"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"half a checkpoint")
    Trainer(compose_cfg(*TINY, "trainer.max_iters=1", "trainer.eval_every=0"), tmp_path)
    assert not orphan.exists()


def test_a_resumed_run_logs_each_step_once(compose_cfg, tmp_path):
    class _Stop(Exception):
        pass

    class _StopAt:
        def after_step(self, trainer):
            if trainer.step == 6:
                raise _Stop

    common = (*TINY, "trainer.max_epochs=2", "trainer.eval_every=0", "trainer.checkpoint_every=4")
    with pytest.raises(_Stop):  # last.pt at step 4; steps 5 and 6 logged, then lost
        Trainer(compose_cfg(*common), tmp_path, hooks=[_StopAt()]).fit()
    Trainer(compose_cfg(*common, "resume=true"), tmp_path).fit()
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "train"]
    assert steps == list(range(1, 9))


@pytest.mark.parametrize("text, message", [
    ("model: !!python/object/apply:os.system ['true']\n", "cannot be read as plain YAML"),
    ("model: {name: '${oc.env:HOME}'}\n", r"holds an interpolation at model.name \('\$\{oc.env:HOME\}'\)"),
])
def test_a_stored_config_that_is_not_plain_or_still_interpolates_is_refused_by_name(compose_cfg, tmp_path, text,
                                                                                     message):
    Trainer(compose_cfg(*TINY, "trainer.max_iters=1", "trainer.eval_every=0"), tmp_path / "run").fit()
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    state["config"] = text + OmegaConf.to_yaml({k: v for k, v in OmegaConf.create(state["config"]).items()
                                                 if k != "model"})
    save_checkpoint(state, tmp_path / "tampered.pt")
    with pytest.raises(ConfigError, match=rf"checkpoint '.*tampered.pt': its stored config {message}"):
        TrainedRun(tmp_path / "tampered.pt", "cpu")


def test_a_killed_loader_worker_ends_the_command_in_one_line(capsys):
    @reports_bad_input("zoo-train")
    def main():
        raise RuntimeError("DataLoader worker (pid 4242) is killed by signal: Killed. ")

    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == 2
    assert "zoo-train: error: DataLoader worker (pid 4242) is killed by signal: Killed: a data-loader worker died" in \
        capsys.readouterr().err
