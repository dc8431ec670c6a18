"""The golden figures: every *_lite model's training losses on one fixed synthetic batch, and the detections of a
short-trained checkpoint of each, computed from the run configs stored in ``values.json`` (not today's conf/, so a
config change does not move them; a code change that changes the numbers does).

Run as ``python tests/golden/golden_values.py [--write]``: prints (or rewrites) the figures as JSON. The test runs it
in a child process with the CPU kernels capped at AVX2 and one thread, so the figures are the same on an AVX2 and an
AVX-512 machine (see ``REPRODUCIBLE_ENV``)."""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
VALUES = HERE / "values.json"
MODELS = ("ssd_lite", "refinedet_lite", "faster_rcnn_lite", "fpn_lite", "cornernet_lite")
# Same kernels on every x86 machine: oneDNN, MKL and ATen's own vectorised kernels held to AVX2, one thread (a
# reduction split over threads sums in another order). Training autocast is off in the configs (trainer.amp=false).
REPRODUCIBLE_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
                    "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
OVERRIDES = ("data.train.num_images=8", "data.val.num_images=4", "data.train.image_size=128",
             "data.val.image_size=128", "data.cache=false", "data.num_workers=0",
             "trainer.batch_size=2", "trainer.max_epochs=1", "trainer.max_iters=3", "trainer.eval_every=0",
             "trainer.progress=false", "trainer.tensorboard=false", "trainer.plots=false", "trainer.amp=false",
             "trainer.log_every=1")


def compose_configs() -> dict[str, dict]:
    """Today's resolved config of each model under OVERRIDES (used only by --write)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from zoo.config.paths import CONF_DIR

    configs = {}
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        for name in MODELS:
            cfg = compose("train", overrides=[f"model={name}", *OVERRIDES])
            configs[name] = OmegaConf.to_container(cfg, resolve=True)
    return configs


def _rounded(values):
    return [round(float(v), 7) for v in values]


def losses_on_one_batch(cfg) -> dict[str, float]:
    import torch

    from zoo.config.run import RunConfig
    from zoo.engine.loaders import build_split
    from zoo.models.detectors import build_detector

    run = RunConfig.from_composed(cfg)
    loader, sampler = build_split(run, "train", 2, seed=0)
    sampler.set_epoch(0)
    batch = next(iter(loader))
    torch.manual_seed(0)
    model = build_detector(run.detector, num_classes=len(loader.dataset.class_names))
    model.train()
    losses = model(batch.images, batch.targets, image_sizes=batch.image_sizes)
    return {k: round(float(v), 7) for k, v in sorted(losses.items())}


def detections_after_short_training(cfg, run_dir: Path) -> list[dict]:
    import torch

    from zoo.apis.run import TrainedRun
    from zoo.engine.trainer import Trainer

    Trainer(cfg, run_dir).fit()
    trained = TrainedRun(run_dir / "checkpoints" / "last.pt", device="cpu")
    model, loader = trained.model, trained.loader("val", 2)
    batch = next(iter(loader))
    model.eval()
    with torch.inference_mode():
        outputs = model(batch.images, image_sizes=batch.image_sizes)
    found = []
    for out in outputs:
        top = torch.argsort(out["scores"], descending=True, stable=True)[:20]
        found.append({"count": len(out["scores"]), "scores": _rounded(out["scores"][top]),
                      "labels": out["labels"][top].tolist(), "boxes": [_rounded(b) for b in out["boxes"][top]]})
    return found


def compute(configs: dict[str, dict]) -> dict[str, dict]:
    import torch
    from omegaconf import OmegaConf

    from zoo.components import load_components

    load_components()
    torch.set_num_threads(1)
    figures = {}
    for name, stored in configs.items():
        cfg = OmegaConf.create(stored)
        with tempfile.TemporaryDirectory() as run_dir:
            figures[name] = {"losses": losses_on_one_batch(cfg),
                             "detections": detections_after_short_training(cfg, Path(run_dir))}
    return figures


def main(argv: list[str]) -> None:
    if "--write" in argv:
        configs = compose_configs()
        VALUES.write_text(json.dumps({"configs": configs, "figures": compute(configs)}, indent=1) + "\n")
        return
    configs = json.loads(VALUES.read_text())["configs"]
    print(json.dumps(compute(configs)))


if __name__ == "__main__":
    main(sys.argv[1:])
