"""The validation hook: the val split scored during and at the end of training, and the best checkpoint kept."""
from __future__ import annotations

import math
from typing import Any

from tqdm import tqdm

from zoo.engine.distributed import barrier, from_main
from zoo.engine.hooks.base import HOOKS, HookBase
from zoo.engine.inference import evaluate_model


@HOOKS.register("validation")
class Validation(HookBase):
    """Scores the val split every ``trainer.eval_every`` epochs (0: only at the end) and once training is done (under
    torchrun the ranks share the inference, rank 0 scores); tells the other hooks (``after_validation``) and keeps
    ``checkpoints/best.pt`` whenever the first evaluator's primary metric improves (``trainer.best``). Place it before
    the checkpoint hook: an epoch's last.pt is saved after its evaluation."""

    def after_epoch(self, trainer) -> None:
        epoch = math.ceil(trainer.step / trainer.iters_per_epoch)
        last = trainer.step >= trainer.total_iters  # the end of training validates once, in after_train
        if not last and trainer.tcfg.eval_every and epoch % trainer.tcfg.eval_every == 0:
            self.validate(trainer)

    def after_train(self, trainer) -> None:
        self.validate(trainer)

    def validate(self, trainer) -> dict[str, Any]:
        improved = False
        # every rank scores its share of the split; rank 0 gathers and scores the whole (the others get empty results)
        results = evaluate_model(trainer.model, trainer.val_loader, trainer.evaluators, trainer.device,
                                 progress=trainer.tcfg.progress, channels_last=trainer.tcfg.channels_last)
        if trainer.is_main:
            trainer.validation = (trainer.step, results)
            trainer.call_hooks("after_validation", results)
            metric = trainer.evaluators[0].primary_metric
            value = results["metrics"][metric]
            tqdm.write(f"step {trainer.step}: val {metric} = {value:.4f}")
            improved = not math.isnan(value) and (metric not in trainer.best or value > trainer.best[metric])
            if improved:
                trainer.best = {metric: value, "step": trainer.step}
        if from_main(improved):  # every rank joins in saving: the checkpoint gathers each one's random state
            trainer.save("best.pt")
        barrier()
        return results
