"""What a trainer hook is: an object with any of the loop's events, and the registry ``trainer.hooks`` names."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from zoo.registry import ConfigError, Registry

HOOKS = Registry("trainer hook")


class HookBase:
    """Every event is a no-op here; a hook overrides the ones it needs. Each gets the trainer, whose ``step``,
    ``model``, ``optimizer``, ``run`` (the run config) and ``run_dir`` it may read. The events, in order:
    ``before_train``; each step ``before_step``, ``after_loss(losses, total)`` (before the backward pass),
    ``after_backward(grad_norm)`` (before the optimizer step; ``grad_norm`` is None where it is not computed) and
    ``after_step``; ``after_epoch``; ``after_validation(results)`` whenever the val split was scored (on the main
    process only: a hook must not run a collective there);
    ``after_train`` once the loop is done; ``close`` always, also when training stopped on an error."""

    def before_train(self, trainer) -> None:
        pass

    def before_step(self, trainer) -> None:
        pass

    def after_loss(self, trainer, losses: dict, total) -> None:
        pass

    def after_backward(self, trainer, grad_norm) -> None:
        pass

    def after_step(self, trainer) -> None:
        pass

    def after_epoch(self, trainer) -> None:
        pass

    def after_validation(self, trainer, results: dict[str, Any]) -> None:
        pass

    def after_train(self, trainer) -> None:
        pass

    def close(self, trainer) -> None:
        pass


def build_hooks(nodes: Sequence[Any]) -> list[Any]:
    """``trainer.hooks``: each entry a registered hook's name or ``{type: name, **its arguments}``, in the order
    they run (a hook sees what the ones before it did in the same event)."""
    hooks = []
    for i, node in enumerate(nodes):
        if isinstance(node, str):
            node = {"type": node}
        try:
            hooks.append(HOOKS.build(node))
        except ConfigError as error:
            raise ConfigError(f"trainer.hooks[{i}]: {error}") from error
    return hooks
