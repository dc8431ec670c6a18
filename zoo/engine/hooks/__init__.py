"""Trainer hooks: each a small class with one job, named in ``trainer.hooks`` (conf/trainer) in the order they run.
Importing this package registers the built-in ones; a project of its own registers more with
``@HOOKS.register("name")`` or passes hook objects to ``Trainer(cfg, run_dir, hooks=[...])``."""
from zoo.engine.hooks.base import HOOKS, HookBase, build_hooks
from zoo.engine.hooks.checkpointing import PeriodicCheckpoint
from zoo.engine.hooks.evaluation import Validation
from zoo.engine.hooks.logging import MetricsLog, ProgressBar
from zoo.engine.hooks.nan_guard import NaNGuard, NonFiniteLossError
from zoo.engine.hooks.report import FinalReport, paper_figure
from zoo.engine.hooks.stages import StagesHook

__all__ = ["HOOKS", "HookBase", "build_hooks", "PeriodicCheckpoint", "Validation", "MetricsLog", "ProgressBar",
           "NaNGuard", "NonFiniteLossError", "FinalReport", "paper_figure", "StagesHook"]
