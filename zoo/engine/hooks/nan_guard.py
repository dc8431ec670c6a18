"""The NaN guard: training stops at the first non-finite loss or gradient, before the weights change."""
from __future__ import annotations

import torch

from zoo.engine.distributed import all_reduce_mean
from zoo.engine.hooks.base import HOOKS, HookBase


class NonFiniteLossError(ValueError):
    """A loss term, the gradient or the weights became NaN or infinite; the last good checkpoint is left as it was.
    (A ValueError: the commands end on it with one line and exit status 2, as on a bad value.)"""


@HOOKS.register("nan_guard")
class NaNGuard(HookBase):
    """Raises NonFiniteLossError naming the step and the terms, leaving the last good checkpoint as it is. Every
    rank sees the same averaged total, so all stop together. With float16 loss scaling the scaler skips
    non-finite gradient steps itself, so only the loss is checked there."""

    def after_loss(self, trainer, losses: dict, total: torch.Tensor) -> None:
        if not torch.isfinite(all_reduce_mean(total.detach())):
            bad = [f"{k}={v.item()}" for k, v in losses.items() if not torch.isfinite(v)]
            raise NonFiniteLossError(f"non-finite loss at step {trainer.step + 1}: {', '.join(bad) or total.item()}; "
                                     f"{trainer.kept_checkpoint()}")

    def after_backward(self, trainer, grad_norm: torch.Tensor | None) -> None:
        if grad_norm is not None and not trainer.scaler.is_enabled() and not torch.isfinite(grad_norm):
            raise NonFiniteLossError(f"non-finite gradient norm at step {trainer.step + 1} (losses finite); "
                                     f"{trainer.kept_checkpoint()}")
