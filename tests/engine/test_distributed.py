"""Two CPU processes under torchrun (gloo): the sampler shards, rank 0 alone writes the run outputs."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                    reason="torchrun is not installed beside this Python")
def test_torchrun_two_processes(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    overrides = [o for o in TINY if not o.startswith("data.train.num_images")]
    cmd = [torchrun, "--nproc_per_node=2", "--master_port=29533", "-m", "zoo.cli.train",
           "data.train.num_images=32", "trainer.max_epochs=2", *overrides, f"hydra.run.dir={tmp_path}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[2])
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["steps"] == 8  # 32 images / (2 ranks x batch 4) = 4 steps per epoch
    train_lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()
                   if '"kind": "train"' in x]
    assert [x["step"] for x in train_lines] == list(range(1, 9))  # one writer, not two
