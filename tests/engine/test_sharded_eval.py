"""Evaluation shared across ranks: every image scored once, in whole batches, and the figure of one process to the
last digit (VOC, COCO and the error breakdown), on an odd number of images; the trainer's validation shares it too."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY, free_port
from zoo.data import ShardedBatches

TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent))
needs_torchrun = pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed beside this Python")


def test_sharded_batches_neither_drop_nor_repeat_and_keep_each_batch_whole():
    shards = [list(ShardedBatches(range(7), 2, rank, 3)) for rank in range(3)]
    assert shards == [[[0, 1], [6]], [[2, 3]], [[4, 5]]]
    assert sorted(i for shard in shards for batch in shard for i in batch) == list(range(7))
    assert list(ShardedBatches(range(3), 4, 1, 2)) == []  # a rank with nothing to do
    with pytest.raises(ValueError, match="rank 2 is not in 0..1"):
        ShardedBatches(range(3), 4, 2, 2)


@pytest.fixture(scope="module")
def odd_checkpoint(tmp_path_factory):
    from hydra import compose, initialize_config_dir

    from zoo.config.paths import CONF_DIR
    from zoo.engine.trainer import Trainer

    run_dir = tmp_path_factory.mktemp("odd") / "run"
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[*TINY, "data.val.num_images=7", "trainer.max_iters=6", "trainer.eval_every=0"])
    Trainer(cfg, run_dir).fit()
    return run_dir / "checkpoints" / "last.pt"


@needs_torchrun
@pytest.mark.parametrize("extra", [[], pytest.param(["tta=flip", "evaluator=voc07"], marks=pytest.mark.slow)],
                         ids=["all-evaluators", "flip-tta"])
def test_two_processes_evaluating_score_what_one_does(odd_checkpoint, tmp_path, extra):
    common = [f"checkpoint={odd_checkpoint}", "evaluator=all", "batch_size=2", "plots=false", "progress=false", *extra]
    one = subprocess.run([sys.executable, "-m", "zoo.cli.evaluate", *common, f"hydra.run.dir={tmp_path / 'one'}"],
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([TORCHRUN, "--nproc_per_node=2", f"--master_port={free_port()}", "-m", "zoo.cli.evaluate",
                          *common, f"hydra.run.dir={tmp_path / 'two'}"], capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    alone, shared = (json.loads((tmp_path / name / "results.json").read_text()) for name in ("one", "two"))
    assert shared["metrics"] == alone["metrics"] and shared["per_class"] == alone["per_class"]
    assert {"voc07_map50", "voc_map50", "coco_ap", "coco_ar100"} <= set(alone["metrics"]) or extra
    assert alone["tta"] == ("flip" if extra else None)
    assert (alone["ranks"], shared["ranks"]) == (1, 2)
    assert two.stdout.count("results:") == 1  # rank 0 alone prints and writes


@needs_torchrun
@pytest.mark.slow  # 20 s: two rendezvous, two trainings
def test_two_nodes_on_one_machine_train_validate_and_resume(tmp_path):
    """Two torchrun invocations, one process each, meeting at a c10d rendezvous on localhost as two nodes would:
    one run folder (a shared file system), global rank 0 alone writes."""
    port = free_port()
    overrides = [o for o in TINY if not o.startswith("data.train.num_images")]

    def both_nodes(*extra):
        nodes = [subprocess.Popen([TORCHRUN, "--nnodes=2", f"--node_rank={k}", "--nproc_per_node=1",
                                   "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{port}", "--rdzv_id=zoo-test",
                                   "-m", "zoo.cli.train", "data.train.num_images=16", "trainer.max_epochs=1",
                                   *overrides, f"hydra.run.dir={tmp_path}", *extra],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in (0, 1)]
        outs = [node.communicate(timeout=300) for node in nodes]
        for node, (_, err) in zip(nodes, outs):
            assert node.returncode == 0, err[-3000:]
        return outs

    both_nodes()
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["steps"] == 2  # 16 images / (2 nodes x batch 4)
    assert "voc07_map50" in results["metrics"]  # validated with both nodes sharing the val split
    both_nodes("resume=true")  # both nodes take their own random state back from the one checkpoint
    assert json.loads((tmp_path / "results.json").read_text())["steps"] == 2
