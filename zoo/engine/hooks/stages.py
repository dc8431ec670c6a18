"""The stages hook: enters each training stage (trainer.stages) as the step reaches it."""
from __future__ import annotations

from tqdm import tqdm

from zoo.engine.hooks.base import HOOKS, HookBase


@HOOKS.register("stages")
class StagesHook(HookBase):
    """Before each step, applies the stage of the step (which modules learn, which losses count: the trainer reads
    ``trainer.stage``); a stage that begins at its own first step starts with fresh optimizer state (momentum and
    Adam moments do not carry across stages), one reached by resuming mid-stage keeps the restored state."""

    def before_step(self, trainer) -> None:
        if not trainer.stages:
            return
        stage, began = trainer.stages.enter(trainer.step, trainer.total_iters, trainer.model)
        trainer.stage = stage
        if began and trainer.stages.span(trainer.step, trainer.total_iters)[0] == 0:
            trainer.optimizer.state.clear()
        if began and trainer.is_main:
            tqdm.write(f"stage '{stage.name}' from step {trainer.step + 1}: training {list(stage.train)}, "
                       f"losses {list(stage.losses)}")
