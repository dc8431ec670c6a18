"""The final report hook: the test split scored, results.json written, the tables printed, the plots drawn."""
from __future__ import annotations

import json
import logging
import os
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from zoo.engine.drawing import write_detection_grid
from zoo.engine.hooks.base import HOOKS, HookBase
from zoo.engine.inference import evaluate_model
from zoo.engine.loaders import build_split
from zoo.utils.files import write_text_atomically
from zoo.utils.provenance import code_version, machine

log = logging.getLogger("zoo.train")


def paper_figure(cfg: DictConfig, metrics: dict[str, float]) -> dict[str, Any] | None:
    """The experiment's ``paper`` entry with the measured value of its metric beside it, both in
    percent as papers print them, and whether the run used the paper's data (``paper.data``)."""
    if not cfg.get("paper"):
        return None
    paper = OmegaConf.to_container(cfg.paper, resolve=True)
    paper["same_data"] = paper.get("data") in (None, cfg.data.name)
    metric = paper.get("metric")
    if metric not in metrics:  # a warning, not an error: the run's own results are still worth keeping
        log.warning("paper.metric '%s' is not among the evaluated metrics %s; add its evaluator (e.g. "
                    "evaluator=all)", metric, sorted(metrics))
        return {**paper, "measured": None}
    return {**paper, "measured": round(100 * metrics[metric], 2)}


def next_steps(run_dir, model: str | None) -> list[str]:
    """Where the run is, and three commands to go on with, each runnable as printed (with the venv active)."""
    last = run_dir / "checkpoints" / "last.pt"
    real = model if model and "demo" not in model else "ssd_lite"  # the demo's small input suits its shapes only
    return [f"\nrun folder: {run_dir} (results.json, metrics.jsonl, checkpoints/, plots/)", "next:",
            f"  zoo-eval checkpoint={last} tta=flip                      # score it again, with its mirror image",
            f"  zoo-predict checkpoint={last} inputs=[path/to/images] draw=true out={run_dir / 'predictions'}"
            "   # your own images",
            f"  zoo-train model={real} data=bccd trainer=cpu_bccd                      # on real data (BCCD)"]


@HOOKS.register("report")
class FinalReport(HookBase):
    """Once training is done, on the main process: the test split's scores (the final validation's when the
    test node is the val node or absent), ``results.json`` with what produced them (the paper tables read it),
    the printed tables and paper figure, and with ``trainer.plots`` each evaluator's curves and the final model's
    detections drawn on the scored split (``plots/detections.png``). ``trainer.results`` holds the record."""

    def after_train(self, trainer) -> None:
        if not trainer.is_main:
            return
        split = trainer.run.scored_split("test")
        metrics = self.score(trainer, split)
        results = self.record(trainer, metrics, split)
        write_text_atomically(trainer.run_dir / "results.json", json.dumps(results, indent=2))
        self.print(trainer, metrics, results["paper"])
        if trainer.run.data.eval_images:
            tqdm.write(f"(scored on the first {trainer.run.data.eval_images} images of {split} only, data.eval_images: "
                       "a quick look, not a figure to compare)")
        if trainer.tcfg.plots:
            self.plot(trainer, split)
        trainer.results = results

    @staticmethod
    def score(trainer, split: str) -> dict[str, Any]:
        step, results = trainer.validation or (None, None)
        data = trainer.run.data
        if (not data.test or data.test == data.val) and step == trainer.step:  # scored by the final validation
            return results
        loader, _ = build_split(trainer.run, split, trainer.tcfg.batch_size, class_names=trainer.class_names)
        return evaluate_model(trainer.model, loader, trainer.evaluators, trainer.device,
                              progress=trainer.tcfg.progress, channels_last=trainer.tcfg.channels_last)

    @staticmethod
    def record(trainer, metrics: dict[str, Any], split: str) -> dict[str, Any]:
        cfg = trainer.cfg
        return {
            "model": trainer.run.name, "data": trainer.run.data.name,
            "primary_metric": trainer.evaluators[0].primary_metric,
            "split": split,  # a test node equal to val was scored by the validation
            "eval_images": trainer.run.data.eval_images,  # null: the whole split
            "overrides": list(cfg.get("overrides", []) or []),
            "metrics": metrics["metrics"], "per_class": metrics["per_class"], "best_val": trainer.best,
            "steps": trainer.step, "train_seconds": round(trainer.train_seconds, 1), "seed": trainer.run.seed,
            "machine": f"{machine(torch.get_num_threads())}, {os.cpu_count()} cores, {trainer.device.type}",
            "train_dtype": str(trainer.amp_dtype or torch.float32).removeprefix("torch."),  # autocast or not, by CPU
            "code": code_version(),
            "paper": paper_figure(cfg, metrics["metrics"]),
        }

    @staticmethod
    def print(trainer, metrics: dict[str, Any], paper: dict[str, Any] | None) -> None:
        tqdm.write("\n\n".join(metrics["tables"]))
        if paper:
            said = (f"the paper prints no figure ({paper.get('source', 'its source')})" if paper.get("value") is None
                    else f"paper {paper['value']} on {paper.get('data', 'its data')}"
                         f"{'' if paper.get('verified', True) else ' (unverified)'}")
            tqdm.write(f"{paper['metric']}: measured {paper['measured']} on {trainer.run.data.name}; {said}")
        tqdm.write("\n".join(next_steps(trainer.run_dir.resolve(), trainer.run.name)))

    @staticmethod
    def plot(trainer, split: str) -> None:
        for evaluator in trainer.evaluators:
            evaluator.plot(trainer.run_dir / "plots")
        loader, _ = build_split(trainer.run, split, 8, class_names=trainer.class_names)
        write_detection_grid(trainer.model, loader, trainer.run_dir / "plots" / "detections.png",
                             layout=trainer.memory_format)
