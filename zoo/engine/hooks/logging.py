"""Metric logging hooks: the progress bar, and metrics.jsonl with TensorBoard scalars."""
from __future__ import annotations

from typing import Any

from tqdm import tqdm

from zoo.engine.hooks.base import HOOKS, HookBase
from zoo.engine.logging import RunLogger


@HOOKS.register("progress")
class ProgressBar(HookBase):
    """A progress bar over the run's steps with the loss, learning rate and images per second (trainer.progress;
    the main process only)."""

    def __init__(self):
        self.bar = None

    def before_train(self, trainer) -> None:
        self.bar = tqdm(total=trainer.total_iters, initial=trainer.step, desc="train", dynamic_ncols=True,
                        disable=not (trainer.is_main and trainer.tcfg.progress))

    def after_step(self, trainer) -> None:
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{trainer.losses['loss']:.3f}", lr=f"{trainer.lr:.2e}",
                             img_s=f"{trainer.images_per_s:.1f}", refresh=False)

    def after_train(self, trainer) -> None:
        self.close(trainer)

    def close(self, trainer) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@HOOKS.register("metrics")
class MetricsLog(HookBase):
    """Every ``trainer.log_every`` steps (and the last) a line of losses, learning rate, throughput and epoch in
    metrics.jsonl, and each validation's metrics; the same as TensorBoard scalars (trainer.tensorboard). A resumed
    run first drops what the interrupted one logged past its checkpoint, so that no step is logged twice."""

    def __init__(self):
        self.logger = None

    def before_train(self, trainer) -> None:
        self.logger = RunLogger(trainer.run_dir, enabled=trainer.is_main, tensorboard=trainer.tcfg.tensorboard,
                                resumed_at=trainer.step)

    def after_step(self, trainer) -> None:
        if trainer.step % trainer.tcfg.log_every == 0 or trainer.step == trainer.total_iters:
            self.logger.log(trainer.step, {**trainer.losses, "lr": trainer.lr, "images_per_s": trainer.images_per_s,
                                           "epoch": trainer.step / trainer.iters_per_epoch})

    def after_validation(self, trainer, results: dict[str, Any]) -> None:
        self.logger.log(trainer.step, results["metrics"], kind="val")

    def close(self, trainer) -> None:
        if self.logger is not None:
            self.logger.close()
            self.logger = None
