"""The CUDA paths: every lite model's losses and detections against the CPU's, training under float16 autocast
(with its loss scaler) and bfloat16, resuming a CUDA run, reduced-precision and multi-scale evaluation.
`make test-gpu` runs them; without a CUDA device they are skipped."""
import math

import pytest
import torch
from torchvision.ops import box_iou

from tests.conftest import TINY
from zoo.config import model_node
from zoo.config.run import RunConfig
from zoo.engine.checkpoint import load_checkpoint
from zoo.engine.loaders import build_split
from zoo.engine.trainer import Trainer
from zoo.models.detectors import build_detector

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

LITE = ["ssd_lite", "refinedet_lite", "faster_rcnn_lite", "fpn_lite", "cornernet_lite"]
# Their training losses involve no random choice (two-stage heads sample anchors and RoIs at random, and a CUDA
# generator draws other numbers than the CPU's).
DETERMINISTIC_LOSSES = ["ssd_lite", "refinedet_lite", "cornernet_lite"]


@pytest.fixture(autouse=True)
def _full_fp32():
    """TF32 convolutions and matmuls (cuDNN's default) differ from the CPU by ~1e-3 relative: compare in fp32."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def _model_and_batch(compose_cfg, name: str, *overrides: str):
    cfg = compose_cfg(f"model={name}", *TINY, *overrides)
    torch.manual_seed(0)
    model = build_detector(model_node(cfg.model), num_classes=5)
    loader, _ = build_split(RunConfig.from_composed(cfg), "val", batch_size=2)
    return model, next(iter(loader))


@pytest.mark.parametrize("name", DETERMINISTIC_LOSSES)
def test_training_losses_on_cuda_equal_the_cpus(compose_cfg, name):
    model, batch = _model_and_batch(compose_cfg, name)
    model.train()
    on_cpu = model(batch.images, batch.targets, image_sizes=batch.image_sizes)
    on_gpu = batch.to("cuda")
    on_cuda = model.cuda()(on_gpu.images, on_gpu.targets, image_sizes=batch.image_sizes)
    assert set(on_cpu) == set(on_cuda)
    for key, value in on_cpu.items():
        assert on_cuda[key].item() == pytest.approx(value.item(), rel=1e-3, abs=1e-5), key


def _match_rate(cpu: dict, cuda: dict) -> float:
    """The share of the CPU's 50 best detections found among CUDA's (same label, IoU >= 0.95, score within 1e-3):
    scores a few 1e-6 apart may be ranked or suppressed differently on the two devices."""
    cuda = {k: v.cpu() for k, v in cuda.items()}
    top = cpu["scores"].argsort(descending=True)[:50]
    assert top.numel() > 0, "nothing detected: nothing to compare"
    same = ((box_iou(cpu["boxes"][top], cuda["boxes"]) >= 0.95)
            & (cpu["labels"][top, None] == cuda["labels"][None])
            & ((cpu["scores"][top, None] - cuda["scores"][None]).abs() <= 1e-3))
    return same.any(dim=1).float().mean().item()


# An untrained CornerNet pairs no corners (its peaks are not placed as corners of one box): its decoding is
# compared on hand-made maps below.
@pytest.mark.parametrize("name", [n for n in LITE if n != "cornernet_lite"])
def test_detections_on_cuda_match_the_cpus(compose_cfg, name):
    model, batch = _model_and_batch(compose_cfg, name)
    model.eval()
    with torch.inference_mode():
        on_cpu = model(batch.images, image_sizes=batch.image_sizes)
        on_cuda = model.cuda()(batch.images.cuda(), image_sizes=batch.image_sizes)
    for cpu, cuda in zip(on_cpu, on_cuda, strict=True):
        assert _match_rate(cpu, cuda) >= 0.9


def test_cornernet_decoding_and_soft_nms_on_cuda_match_the_cpus(compose_cfg):
    """Heatmaps peaking at two boxes' corners, plus noise that makes many more candidate pairs."""
    from zoo.task.corner_targets import build_corner_targets

    model = build_detector(model_node(compose_cfg("model=cornernet_lite").model), 3).eval()
    targets = [{"boxes": torch.tensor([[8.0, 12, 60, 44], [100, 20, 180, 120]]), "labels": torch.tensor([0, 2])}]
    ideal = build_corner_targets(targets, 3, (32, 48), stride=4)
    generator = torch.Generator().manual_seed(0)
    maps = {"heat": torch.logit(ideal.heat.clamp(1e-4, 1 - 1e-4)) + torch.randn(ideal.heat.shape, generator=generator),
            "embed": 0.2 * torch.randn(1, 2, 32, 48, generator=generator),
            "offset": torch.rand(1, 2, 2, 32, 48, generator=generator)}
    with torch.inference_mode():
        on_cpu = model._detect(maps, [(128, 192)])[0]
        on_cuda = model.cuda()._detect({k: v.cuda() for k, v in maps.items()}, [(128, 192)])[0]
    assert on_cpu["scores"].numel() > 2 and _match_rate(on_cpu, on_cuda) >= 0.9


class _Interrupt(Exception):
    pass


class _StopAfterEpoch:
    def after_epoch(self, trainer):
        raise _Interrupt


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_autocast_training_on_cuda_and_resuming_it(compose_cfg, tmp_path, dtype):
    common = (*TINY, "device=cuda", "trainer.amp=true", f"trainer.amp_dtype={dtype}", "trainer.max_epochs=2",
              "trainer.eval_every=1", "trainer.checkpoint_every=2")
    results = Trainer(compose_cfg(*common), tmp_path / "whole").fit()
    assert results["train_dtype"] == dtype and results["steps"] == 8
    assert 0.0 <= results["metrics"]["voc07_map50"] <= 1.0
    scaler = load_checkpoint(tmp_path / "whole" / "checkpoints" / "last.pt")["scaler"]
    if dtype == "float16":  # the loss scale travels with the checkpoint
        assert scaler and math.isfinite(scaler["scale"]) and scaler["scale"] > 0
    else:
        assert not scaler

    with pytest.raises(_Interrupt):
        Trainer(compose_cfg(*common), tmp_path / "cut", hooks=[_StopAfterEpoch()]).fit()
    resumed = Trainer(compose_cfg(*common, "resume=true"), tmp_path / "cut")
    assert resumed.step == 4 and next(resumed.model.parameters()).is_cuda
    assert resumed.fit()["steps"] == 8


@pytest.fixture(scope="module")
def cuda_checkpoint(tmp_path_factory):
    from hydra import compose, initialize_config_dir

    from zoo.config.paths import CONF_DIR

    run = tmp_path_factory.mktemp("cuda_run")
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        # 400 px, so that multiscale's 0.8x view (320 px) is not below ssd_lite's smallest input.
        cfg = compose("train", overrides=[*TINY, "device=cuda", "model.input_size=400", "trainer.max_epochs=3",
                                          "trainer.eval_every=0"])
    return Trainer(cfg, run).fit(), str(run / "checkpoints" / "last.pt")


def _evaluate(compose_cfg, checkpoint: str, *overrides: str) -> dict:
    from zoo.apis.evaluate import evaluate_checkpoint

    return evaluate_checkpoint(compose_cfg(f"checkpoint={checkpoint}", "split=val", "plots=false", *overrides,
                                           config_name="eval"))


def test_evaluating_a_cuda_run_on_cuda_and_on_the_cpu(compose_cfg, cuda_checkpoint):
    results, checkpoint = cuda_checkpoint
    on_cuda = _evaluate(compose_cfg, checkpoint, "device=cuda")
    assert on_cuda["metrics"]["voc07_map50"] == pytest.approx(results["metrics"]["voc07_map50"], abs=1e-6)
    on_cpu = _evaluate(compose_cfg, checkpoint, "device=cpu")
    assert on_cpu["metrics"]["voc07_map50"] == pytest.approx(on_cuda["metrics"]["voc07_map50"], abs=0.01)


@pytest.mark.parametrize("overrides", [("precision=fp16",), ("precision=bf16",), ("tta=flip",), ("tta=multiscale",),
                                       ("tta=multiscale", "precision=fp16")])
def test_reduced_precision_and_test_time_augmentation_on_cuda(compose_cfg, cuda_checkpoint, overrides):
    _, checkpoint = cuda_checkpoint
    found = _evaluate(compose_cfg, checkpoint, "device=cuda", *overrides)
    assert 0.0 <= found["metrics"]["voc07_map50"] <= 1.0
    assert found["precision"] == next((o.split("=")[1] for o in overrides if o.startswith("precision")), "fp32")
