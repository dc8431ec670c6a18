"""Training in stages: which modules learn and which losses count, by fraction of the run.

Faster R-CNN's 4-step alternating training is such a schedule (``trainer/stages=four_step``):
RPN; detector on the RPN's proposals; RPN alone on the now-fixed shared layers; detector head alone.
Unlike the paper, stage 2 continues from stage 1's backbone instead of a fresh ImageNet copy (the
zoo's detectors have one backbone), and its proposals come from the frozen RPN head on the backbone
being trained rather than from a fixed, precomputed set; stages 3 and 4 then fine-tune on the fixed
shared layers as the paper does. Each stage replays the LR schedule and starts with fresh optimizer
state, as each of the paper's steps is a separate training run.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

from torch import nn


@dataclass(frozen=True)
class Stage:
    name: str
    fraction: float  # of the run's iterations
    train: tuple[str, ...]  # the modules that learn (top-level, or dotted paths such as roi_head.svm); the rest is frozen
    losses: tuple[str, ...]  # loss-key prefixes that count toward the total (e.g. "rpn/")

    def counts(self, key: str) -> bool:
        return any(key.startswith(prefix) for prefix in self.losses)


class StageSchedule:
    def __init__(self, stages: Sequence[Mapping], model: nn.Module):
        known = [f.name for f in fields(Stage)]
        parsed = []
        children = [name for name, _ in model.named_children()]
        modules = {name for name, _ in model.named_modules() if name}  # a stage may name a submodule: roi_head.svm
        for i, node in enumerate(stages):
            node = dict(node)
            if set(node) != set(known):
                raise ValueError(f"trainer.stages[{i}]: needs exactly the keys {known}, got {sorted(node)}")
            stage = Stage(str(node["name"]), float(node["fraction"]), tuple(node["train"]), tuple(node["losses"]))
            unknown = [m for m in stage.train if m not in modules]
            if unknown:
                raise ValueError(f"trainer.stages[{i}] ({stage.name}): modules {unknown} are not among the model's "
                                 f"{children}")
            parsed.append(stage)
        total = sum(s.fraction for s in parsed)
        if not parsed or abs(total - 1.0) > 1e-6:
            raise ValueError(f"trainer.stages: fractions must sum to 1, got {total}")
        self.stages = parsed
        # Parameters frozen by the model itself (e.g. a backbone's frozen_stages) stay frozen.
        self.trainable = {name for name, p in model.named_parameters() if p.requires_grad}
        self.current: Stage | None = None

    def _bounds(self, total_iters: int) -> list[tuple[int, int]]:
        bounds, end = [], 0.0
        for stage in self.stages:
            start = round(end)
            end += stage.fraction * total_iters
            bounds.append((start, round(end)))
        return bounds

    def index(self, step: int, total_iters: int) -> int:
        """The stage that iteration ``step`` (0-based) of ``total_iters`` belongs to."""
        for i, (_, end) in enumerate(self._bounds(total_iters)):
            if step < end:
                return i
        return len(self.stages) - 1

    def at(self, step: int, total_iters: int) -> Stage:
        return self.stages[self.index(step, total_iters)]

    def span(self, step: int, total_iters: int) -> tuple[int, int]:
        """(position within its stage, the stage's length): each stage runs the whole LR schedule."""
        start, end = self._bounds(total_iters)[self.index(step, total_iters)]
        return step - start, max(end - start, 1)

    def enter(self, step: int, total_iters: int, model: nn.Module) -> tuple[Stage, bool]:
        """Apply the stage of ``step``: gradients on its modules only, and the BatchNorm layers of
        the frozen ones in eval mode (their statistics stay fixed; the modules themselves stay in
        training mode, so the forward contract holds). Returns the stage and whether it just began
        (the trainer then clears the optimizer's state: each step of the paper starts afresh)."""
        stage = self.at(step, total_iters)
        began = stage != self.current
        if began:
            for name, param in model.named_parameters():
                param.requires_grad_(name in self.trainable and _within(name, stage.train))
            self.current = stage
        for name, module in model.named_modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                # Trainable in this stage, and not frozen by the model itself (frozen_stages).
                learns = _within(name, stage.train) and (module.weight is None or f"{name}.weight" in self.trainable)
                module.train(learns)
        return stage, began


def _within(name: str, modules: Sequence[str]) -> bool:
    """Whether the parameter or module ``name`` belongs to one of ``modules`` (top-level or dotted paths)."""
    return any(name == m or name.startswith(m + ".") for m in modules)

