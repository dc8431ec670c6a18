"""Two CPU processes under torchrun (gloo): the sampler shards, rank 0 alone writes the run outputs, and the
checkpoint keeps every rank's random state."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY, free_port
from zoo.engine.checkpoint import RESUME_KEYS, load_checkpoint
from zoo.engine.distributed import local_device


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                    reason="torchrun is not installed beside this Python")
def test_torchrun_two_processes(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    overrides = [o for o in TINY if not o.startswith("data.train.num_images")]
    cmd = [torchrun, "--nproc_per_node=2", f"--master_port={free_port()}", "-m", "zoo.cli.train",
           "data.train.num_images=32", "trainer.max_epochs=2", *overrides, f"hydra.run.dir={tmp_path}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[2])
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["steps"] == 8  # 32 images / (2 ranks x batch 4) = 4 steps per epoch
    train_lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()
                   if '"kind": "train"' in x]
    assert [x["step"] for x in train_lines] == list(range(1, 9))  # one writer, not two
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt", required=RESUME_KEYS)
    rng = state["rng"]
    assert state["world_size"] == 2 and len(rng) == 2 and not torch.equal(rng[0]["torch"], rng[1]["torch"])  # each rank's own stream


def test_torchrun_needs_a_named_run_folder(tmp_path):
    env = {**os.environ, "WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}
    proc = subprocess.run([sys.executable, "-m", "zoo.cli.train", "trainer.max_iters=1"], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode != 0 and "hydra.run.dir=<folder>" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("*.pt"))


def test_a_bare_cuda_device_is_this_process_gpu(monkeypatch):
    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert local_device("cuda") == torch.device("cuda", 1) == local_device("auto")
    assert local_device("cuda:0") == torch.device("cuda", 0) and len(chosen) == 2


def test_resuming_with_another_number_of_processes_is_refused_naming_both(compose_cfg, tmp_path):
    from zoo.engine.checkpoint import save_checkpoint
    from zoo.engine.trainer import Trainer

    overrides = (*TINY, "trainer.max_iters=1", "trainer.eval_every=0")
    Trainer(compose_cfg(*overrides), tmp_path).fit()
    path = tmp_path / "checkpoints" / "last.pt"
    state = load_checkpoint(path, required=RESUME_KEYS)
    state["rng"] = state["rng"] * 2  # as two processes save it: one random state each
    save_checkpoint(state, path)
    with pytest.raises(ValueError, match=r"trained by 2 process\(es\) \(a global batch of 4 x 2\), this run has 1 "
                                         r"\(4 x 1\).*resume with torchrun --nproc_per_node=2"):
        Trainer(compose_cfg(*overrides, "resume=true"), tmp_path)
