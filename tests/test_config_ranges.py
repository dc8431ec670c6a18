"""A numeric setting out of its range fails before anything is built, naming its key (and zoo-train exits 2)."""
import subprocess
import sys

import pytest

from tests.conftest import TINY
from zoo.config.run import RunConfig
from zoo.registry import ConfigError


@pytest.mark.parametrize("override, key", [
    ("trainer.grad_clip=-10", "trainer.grad_clip"),  # a negative norm would reverse the gradients
    ("trainer.grad_clip=nan", "trainer.grad_clip"),
    ("trainer.log_every=0", "trainer.log_every"),
    ("trainer.max_epochs=0", "trainer.max_epochs"),
    ("trainer.max_iters=-1", "trainer.max_iters"),
    ("trainer.max_iters=0", "trainer.max_iters"),
    ("trainer.schedule.warmup_iters=-5", "trainer.schedule.warmup_iters"),
    ("trainer.checkpoint_every=-1", "trainer.checkpoint_every"),
    ("trainer.eval_every=-1", "trainer.eval_every"),
    ("trainer.batch_size=0", "trainer.batch_size"),
    ("trainer.optimizer.lr=-0.1", "trainer.optimizer.lr"),
    ("trainer.optimizer.lr=inf", "trainer.optimizer.lr"),
    ("trainer.optimizer.lr=nan", "trainer.optimizer.lr"),
    ("seed=abc", "seed"),
    ("seed=1.5", "seed"),
    ("data.std=[58.4,0,57.4]", "data.std"),
    ("model.input_size=-320", "model.input_size"),
    ("model.input_size=320.5", "model.input_size"),
])
def test_an_out_of_range_value_names_its_key(compose_cfg, override, key):
    with pytest.raises(ConfigError, match=rf"^{key.replace('.', '[.]')} must be "):
        RunConfig.from_composed(compose_cfg(*TINY, override))


def test_values_in_range_pass(compose_cfg):
    RunConfig.from_composed(compose_cfg(*TINY, "trainer.grad_clip=0", "trainer.max_iters=1", "trainer.eval_every=0",
                                        "trainer.optimizer.lr=0", "trainer.schedule.warmup_iters=0"))


def test_zoo_train_refuses_it_in_one_line_with_exit_status_2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "zoo.cli.train", *TINY, "trainer.grad_clip=-10",
                           f"hydra.run.dir={tmp_path}"], capture_output=True, text=True)
    assert done.returncode == 2 and "trainer.grad_clip must be null or 0 (no clipping) or a number > 0" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "checkpoints").exists()
