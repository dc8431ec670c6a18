"""The checkpoint hook: last.pt at each epoch's end, every trainer.checkpoint_every steps, and at the end."""
from __future__ import annotations

from zoo.engine.hooks.base import HOOKS, HookBase


@HOOKS.register("checkpoint")
class PeriodicCheckpoint(HookBase):
    """Saves ``checkpoints/last.pt`` (every rank takes part: the checkpoint gathers each one's random state). Within
    an epoch every ``trainer.checkpoint_every`` steps; at an epoch's end after that epoch's evaluation (saving first
    would let a crash during the evaluation resume past it), so it runs after the validation hook."""

    def after_step(self, trainer) -> None:
        every = trainer.tcfg.checkpoint_every
        if every and trainer.step % every == 0 and not trainer.ends_epoch:
            trainer.save("last.pt")

    def after_epoch(self, trainer) -> None:
        trainer.save("last.pt")

    def after_train(self, trainer) -> None:
        trainer.save("last.pt")
