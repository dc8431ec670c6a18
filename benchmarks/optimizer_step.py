"""What the optimizer implementation costs a training step: the per-tensor loop, foreach and fused.

Usage: python benchmarks/optimizer_step.py [--steps 20] [overrides for zoo-train's config ...]

Times, in one process, (1) the optimizer step alone on the default model's parameters with random
gradients and (2) the trainer's whole step (forward, loss, backward, clipping, optimizer) on the same
20 cached batches, with `trainer.optimizer.fused=false` and `true` alternated twice (the machine is noisy).
"""
from __future__ import annotations

import argparse
import time

import torch
from hydra import compose, initialize_config_dir

from zoo.config.paths import CONF_DIR
from zoo.engine.optim import build_optimizer
from zoo.engine.trainer import Trainer
from zoo.components import load_components


def optimizer_only(trainer: Trainer, cfg: dict, steps: int) -> float:
    model = trainer.model
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    optimizer = build_optimizer(model, cfg)
    for _ in range(5):
        optimizer.step()
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.step()
    return (time.perf_counter() - start) / steps * 1000


def train_step(overrides: list[str], fused: bool, steps: int, run_dir: str) -> tuple[float, Trainer]:
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, "trainer.progress=false", "data.num_workers=0",
                                          f"+trainer.optimizer.fused={str(fused).lower()}"])
    trainer = Trainer(cfg, run_dir)
    batches = iter(trainer.train_loader)
    batches = [next(batches) for _ in range(2 * steps)]
    for batch in batches[:steps]:  # warm-up
        trainer.run_step(batch)
    start = time.perf_counter()
    for batch in batches[steps:]:
        trainer.run_step(batch)
    return (time.perf_counter() - start) / steps * 1000, trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--run-dir", default="/tmp/optimizer_step_run")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    load_components()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; overrides {args.overrides}")
    for fused in (False, True, False, True):
        ms, trainer = train_step(args.overrides, fused, args.steps, args.run_dir)
        print(f"train step, fused={fused}: {ms:.1f} ms", flush=True)
    base = {k: v for k, v in dict(trainer.tcfg.optimizer).items() if k != "fused"}
    for name, extra in (("loop", {"fused": False, "foreach": False}), ("foreach", {"foreach": True}),
                        ("fused", {"fused": True})):
        print(f"{base['type']} step alone, {name}: {optimizer_only(trainer, {**base, **extra}, 50):.2f} ms", flush=True)


if __name__ == "__main__":
    main()
