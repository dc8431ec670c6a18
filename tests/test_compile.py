"""`zoo-eval compile=true`: the compiled detector returns what the eager one does."""
import shutil

import pytest
import torch

from zoo.config import model_node
from zoo.engine.precision import compile_for_inference
from zoo.models.detectors import build_detector


@pytest.mark.slow  # compiling takes tens of seconds on 2 cores
@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="inductor needs a C++ compiler on the CPU")
def test_compiled_ssd_lite_gives_the_eager_detections(compose_cfg):
    cfg = compose_cfg("model=ssd_lite")
    torch.manual_seed(0)
    model = build_detector(model_node(cfg.model), num_classes=3).eval().to(memory_format=torch.channels_last)
    images = torch.randn(2, 3, 320, 320).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        eager = model(images)
        compiled = compile_for_inference(model)(images)
    for e, c in zip(eager, compiled):
        assert len(e["boxes"]) > 0
        torch.testing.assert_close(c["boxes"], e["boxes"], atol=1e-3, rtol=1e-4)
        torch.testing.assert_close(c["scores"], e["scores"], atol=1e-4, rtol=1e-4)
        assert torch.equal(c["labels"], e["labels"])


def test_compile_with_only_proposal_evaluators_is_refused(compose_cfg, tmp_path):
    """propose() bypasses the compiled forward, so compile=true would be recorded for nothing compiled."""
    from tests.conftest import TINY
    from zoo.apis.evaluate import evaluate_checkpoint
    from zoo.engine.trainer import Trainer

    Trainer(compose_cfg(*TINY, "model=faster_rcnn_lite", "model.input_size=128", "trainer.max_iters=1",
                        "trainer.eval_every=0"), tmp_path).fit()
    cfg = compose_cfg(f"checkpoint={tmp_path / 'checkpoints' / 'last.pt'}", "evaluator=proposals", "compile=true",
                      "split=val", config_name="eval")
    with pytest.raises(ValueError, match="drop compile=true"):
        evaluate_checkpoint(cfg)
