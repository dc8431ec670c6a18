"""One trainer for every detector: iteration-based, resumable exactly, DDP-aware."""
from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from zoo.config import DataConfig, TrainerConfig, model_node, stored_run_config, validate_section
from zoo.engine.checkpoint import (RESUME_KEYS, load_checkpoint, rng_state, save_checkpoint, set_rng_state,
                                   write_text_atomically)
from zoo.engine.distributed import all_reduce_mean, barrier, from_main, gather_from_all, init_distributed, local_device
from zoo.engine.inference import (autocast_context, autocast_dtype, cpu_has_native_bfloat16, evaluate_model,
                                  memory_format)
from zoo.engine.loaders import build_split, scored_split
from zoo.engine.logging import RunLogger
from zoo.engine.preflight import check_components
from zoo.engine.optim import build_optimizer, build_scheduler
from zoo.engine.stages import Stage, StageSchedule
from zoo.engine.timing import code_version, machine
from zoo.evaluation import build_evaluators
from zoo.models.detectors import build_detector

log = logging.getLogger("zoo.train")


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite; the last good checkpoint is left as it was."""


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


# Trainer and data keys that only change what is shown or written, or how fast, not the run itself.
_COSMETIC = {"progress", "log_every", "tensorboard", "plots", "eval_every", "checkpoint_every"}
_COSMETIC_DATA = {"num_workers", "cache"}  # samples are keyed by (seed, epoch, position), not by who loads them or when


def run_config_differences(cfg: DictConfig, stored: DictConfig, shared_only: bool = False) -> list[str]:
    """The keys (model, data, evaluator, seed, non-cosmetic trainer.*) in which ``cfg`` would train another
    run than the one ``stored`` (a checkpoint's config) trained. ``shared_only`` compares only the leaves
    both configs have, so a key added to the configs since the run, with its default, is no difference."""
    current = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))

    def differs(a: Any, b: Any) -> bool:
        if shared_only and isinstance(a, DictConfig) and isinstance(b, DictConfig):
            return any(differs(a[k], b[k]) for k in set(a) & set(b))
        return a != b

    names = [k for k in ("model", "evaluator", "seed") if differs(current.get(k), stored.get(k))]
    if differs(*(_without(node.get("data"), _COSMETIC_DATA) for node in (current, stored))):
        names.append("data")
    keys = set(current.trainer) & set(stored.trainer) if shared_only else set(current.trainer) | set(stored.trainer)
    names += [f"trainer.{k}" for k in keys
              if k not in _COSMETIC and differs(current.trainer.get(k), stored.trainer.get(k))]
    return sorted(names)


def _without(node: Any, keys: set[str]) -> Any:
    if not isinstance(node, DictConfig):
        return node
    return OmegaConf.create({k: v for k, v in OmegaConf.to_container(node).items() if k not in keys})


class Trainer:
    """Builds data, model, optimizer and evaluators from a composed config and runs training.

    ``hooks`` are objects with any of ``after_step(trainer)`` and ``after_epoch(trainer)``."""

    def __init__(self, cfg: DictConfig, run_dir: str | Path, hooks: list[Any] | None = None):
        self.cfg = cfg
        self.tcfg: TrainerConfig = validate_section(cfg, "trainer", TrainerConfig)
        self.dcfg: DataConfig = validate_section(cfg, "data", DataConfig)
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.hooks = list(hooks or [])
        self.device = local_device(cfg.get("device", "auto"))
        self.rank, self.world_size = init_distributed(self.device)
        self.is_main = self.rank == 0
        torch.manual_seed(int(cfg.seed) + self.rank)
        check_components(cfg.model, cfg.evaluator, self.dcfg.classes)  # config typos fail before the data loads

        self.train_loader, self.train_sampler = build_split(self.dcfg, cfg.model, "train", self.tcfg.batch_size,
                                                            seed=int(cfg.seed), rank=self.rank,
                                                            world_size=self.world_size)
        self.class_names = list(self.train_loader.dataset.class_names)
        self.val_loader, _ = build_split(self.dcfg, cfg.model, "val", self.tcfg.batch_size, class_names=self.class_names)
        self.model = build_detector(model_node(cfg.model), num_classes=len(self.class_names)).to(self.device)
        self.memory_format = memory_format(self.tcfg.channels_last)
        self.model.to(memory_format=self.memory_format)
        self.optimizer = build_optimizer(self.model, self.tcfg.optimizer)
        self.stages = StageSchedule(self.tcfg.stages, self.model) if self.tcfg.stages else None
        if self.stages and self.world_size > 1:
            raise ValueError("trainer.stages: staged training changes which parameters learn, which DDP does not "
                             "allow; run it in one process")
        self.iters_per_epoch = len(self.train_loader)
        if self.iters_per_epoch == 0:
            raise ValueError(f"the train split has fewer images than one batch ({self.tcfg.batch_size})")
        self.total_iters = self.tcfg.max_epochs * self.iters_per_epoch
        if self.tcfg.max_iters is not None:
            self.total_iters = min(self.total_iters, self.tcfg.max_iters)
        spans = (lambda step: self.stages.span(step, self.total_iters)) if self.stages else None
        self.scheduler = build_scheduler(self.optimizer, self.total_iters, self.tcfg.schedule, spans)
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.evaluators = build_evaluators(list(cfg.evaluator.values()), self.class_names)
        self.net: nn.Module = self.model
        if self.world_size > 1:
            self.net = DistributedDataParallel(self.model, device_ids=[self.device.index] if self.device.index
                                               is not None else None)
            if self.is_main:  # the paper trainers state the whole mini-batch, as the papers do
                log.info("trainer.batch_size is per process: %d x %d processes = %d images per step, %d steps per "
                         "epoch (a paper trainer's batch_size is the whole mini-batch: divide it by %d to keep its "
                         "schedule)", self.tcfg.batch_size, self.world_size, self.tcfg.batch_size * self.world_size,
                         self.iters_per_epoch, self.world_size)
        self.step = 0
        self.best: dict[str, Any] = {}
        self.logger = RunLogger(self.run_dir, enabled=self.is_main, tensorboard=self.tcfg.tensorboard)
        if self.is_main:  # .hydra/config.yaml keeps the interpolations; this is what the run runs with
            (self.run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        if cfg.get("resume"):
            self._resume(cfg.resume)

    # ------------------------------------------------------------------ setup helpers
    def _amp_dtype(self) -> torch.dtype | None:
        """Autocast dtype for training steps: ``amp_dtype`` on CUDA; on the CPU bfloat16 where it runs in
        hardware (AVX-512 BF16, AMX), float32 elsewhere (float16 autocast is slow on every CPU)."""
        if not self.tcfg.amp:
            return None
        dtype = autocast_dtype(self.tcfg.amp_dtype, "trainer.amp_dtype")
        if self.device.type == "cuda":
            return dtype
        if cpu_has_native_bfloat16():
            return torch.bfloat16
        log.info("trainer.amp: this CPU has no bfloat16 instructions (AVX-512 BF16 or AMX), so training runs in "
                 "float32")
        return None

    def _resume(self, resume: Any) -> None:
        path = self.run_dir / "checkpoints" / "last.pt" if resume is True else Path(str(resume))
        if not path.is_file():
            raise FileNotFoundError(f"resume: no checkpoint at '{path}' (resume=true continues a run_dir's last.pt; "
                                    "resume=/path/to/ckpt.pt names one)")
        state = load_checkpoint(path, required=RESUME_KEYS)
        self._check_same_run(stored_run_config(state["config"]), path)
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError) as error:
            raise ValueError(f"resume: {path} does not fit this model or optimizer: {error}") from error
        self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"] or not self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
        else:  # saved where no float16 loss scaling ran (the CPU, bf16): the scale starts afresh
            log.warning("resume: %s holds no loss-scaler state; float16 loss scaling starts from its default", path)
        set_rng_state(self._own_rng_state(state["rng"], path), self.device)
        self.step = int(state["step"])
        self.best = dict(state.get("best", {}))
        log.info("resumed from %s at step %d", path, self.step)

    def _own_rng_state(self, saved: Any, path: Path) -> dict[str, Any]:
        """This rank's random state from a checkpoint holding one per rank (an older one holds a single state)."""
        states = saved if isinstance(saved, list) else [saved]
        if len(states) != self.world_size:
            log.warning("resume: %s was saved by %d process(es), this run has %d; the random streams (and the data "
                        "shards) will not continue exactly", path, len(states), self.world_size)
        return states[self.rank] if self.rank < len(states) else states[0]

    def _check_same_run(self, stored: DictConfig, path: Path) -> None:
        """Resuming with another model, data set, seed or schedule would silently mix two runs. A key that only
        one side has (the code gained or dropped it since the run started) is warned about, not refused: the
        overrides cannot supply it."""
        differ = run_config_differences(self.cfg, stored, shared_only=True)
        if differ:
            raise ValueError(f"resume: the config differs from the one stored in {path} in {differ}; the run was "
                             f"started with the overrides {list(stored.get('overrides') or [])}: pass them again "
                             "with resume=true")
        one_sided = run_config_differences(self.cfg, stored)
        if one_sided:
            log.warning("resume: %s in %s hold keys that this code's config and the stored one do not share (the "
                        "code changed since the run started); resuming with this code's values for them",
                        one_sided, path)

    def state_dict(self) -> dict[str, Any]:
        """Every rank must call it: the random state is gathered from each (rank 0's alone would restart the
        others' streams on resume)."""
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "rng": gather_from_all(rng_state(self.device)),
            "step": self.step, "best": self.best, "config": OmegaConf.to_yaml(self.cfg, resolve=True),
            "class_names": self.class_names,
        }

    def save(self, name: str) -> None:
        """Called by every rank; rank 0 writes."""
        state = self.state_dict()
        if self.is_main:
            save_checkpoint(state, self.run_dir / "checkpoints" / name)

    # ------------------------------------------------------------------ training
    def fit(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        bar = tqdm(total=self.total_iters, initial=self.step, disable=not (self.is_main and self.tcfg.progress),
                   desc="train", dynamic_ncols=True)
        self.net.train()
        while self.step < self.total_iters:
            epoch, offset = divmod(self.step, self.iters_per_epoch)
            self.train_sampler.set_epoch(epoch)
            self.train_sampler.set_start(offset * self.tcfg.batch_size)
            for batch in self.train_loader:
                tick = time.perf_counter()
                losses = self._train_step(batch)
                self.step += 1
                rate = len(batch) * self.world_size / max(time.perf_counter() - tick, 1e-9)
                self._log_step(losses, rate, bar)
                ends_epoch = self.step >= self.total_iters or self.step % self.iters_per_epoch == 0
                # at an epoch's end the epoch's own save follows its evaluation: saving first would let a
                # crash during that evaluation resume past it
                if self.tcfg.checkpoint_every and self.step % self.tcfg.checkpoint_every == 0 and not ends_epoch:
                    self.save("last.pt")
                for hook in self.hooks:
                    getattr(hook, "after_step", lambda _: None)(self)
                if ends_epoch:
                    break
            if self.step % self.iters_per_epoch == 0 or self.step >= self.total_iters:
                self._end_epoch()
        bar.close()
        results = self._final_results(time.perf_counter() - t0)
        self.logger.close()
        return results

    def _train_step(self, batch) -> dict[str, float]:
        stage = self._enter_stage()
        batch = batch.to(self.device, non_blocking=True)
        images = batch.images.contiguous(memory_format=self.memory_format)
        with autocast_context(self.device, self.amp_dtype):
            losses = self.net(images, batch.targets, image_sizes=batch.image_sizes)
        weights = self.tcfg.loss_weights
        unknown = set(weights) - set(losses)
        if unknown:
            raise ValueError(f"trainer.loss_weights names {sorted(unknown)}, which the model does not return; "
                             f"its losses are {sorted(losses)}")
        counted = [k for k in losses if stage is None or stage.counts(k)]
        if not counted:
            raise ValueError(f"trainer.stages: stage '{stage.name}' counts losses {list(stage.losses)}, but the model's "
                             f"losses are {sorted(losses)}")
        total = sum(losses[k].float() * weights.get(k, 1.0) for k in counted)
        if not torch.isfinite(all_reduce_mean(total.detach())):  # every rank sees it, so all stop together
            bad = [f"{k}={v.item()}" for k, v in losses.items() if not torch.isfinite(v)]
            raise NonFiniteLossError(f"non-finite loss at step {self.step + 1}: {', '.join(bad) or total.item()}; "
                                     f"the last good checkpoint in {self.run_dir / 'checkpoints'} is kept")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if self.tcfg.grad_clip or not self.scaler.is_enabled():  # fp16's scaler skips non-finite steps itself
            self.scaler.unscale_(self.optimizer)
            grads = [p.grad for p in self.model.parameters() if p.grad is not None]
            norm = nn.utils.get_total_norm(grads)
            if not torch.isfinite(norm) and not self.scaler.is_enabled():  # checked before the weights change
                raise NonFiniteLossError(f"non-finite gradient norm at step {self.step + 1} (losses finite); "
                                         f"the last good checkpoint in {self.run_dir / 'checkpoints'} is kept")
            if self.tcfg.grad_clip:
                nn.utils.clip_grads_with_norm_(self.model.parameters(), self.tcfg.grad_clip, norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        values = {k: all_reduce_mean(v.detach()).item() for k, v in losses.items()}
        values["loss"] = sum(values[k] * weights.get(k, 1.0) for k in counted)
        return values

    def _enter_stage(self) -> Stage | None:
        if not self.stages:
            return None
        stage, began = self.stages.enter(self.step, self.total_iters, self.model)
        if began and self.stages.span(self.step, self.total_iters)[0] == 0:  # not when resuming mid-stage
            self.optimizer.state.clear()  # momentum and Adam moments do not carry across stages
        if began and self.is_main:
            tqdm.write(f"stage '{stage.name}' from step {self.step + 1}: training {list(stage.train)}, "
                       f"losses {list(stage.losses)}")
        return stage

    def _log_step(self, losses: dict[str, float], rate: float, bar: tqdm) -> None:
        lr = self.optimizer.param_groups[0]["lr"]
        bar.update(1)
        bar.set_postfix(loss=f"{losses['loss']:.3f}", lr=f"{lr:.2e}", img_s=f"{rate:.1f}", refresh=False)
        if self.step % self.tcfg.log_every == 0 or self.step == self.total_iters:
            self.logger.log(self.step, {**losses, "lr": lr, "images_per_s": rate,
                                        "epoch": self.step / self.iters_per_epoch})

    def _end_epoch(self) -> None:
        epoch = math.ceil(self.step / self.iters_per_epoch)
        last = self.step >= self.total_iters
        if not last and self.tcfg.eval_every and epoch % self.tcfg.eval_every == 0:
            self._validate()
        self.save("last.pt")
        for hook in self.hooks:
            getattr(hook, "after_epoch", lambda _: None)(self)

    def _validate(self) -> dict[str, Any]:
        results, improved = {}, False
        if self.is_main:
            results = evaluate_model(self.model, self.val_loader, self.evaluators, self.device,
                                     progress=self.tcfg.progress, channels_last=self.tcfg.channels_last)
            metric = self.evaluators[0].primary_metric
            value = results["metrics"][metric]
            self.logger.log(self.step, results["metrics"], kind="val")
            tqdm.write(f"step {self.step}: val {metric} = {value:.4f}")
            improved = not math.isnan(value) and (metric not in self.best or value > self.best[metric])
            if improved:
                self.best = {metric: value, "step": self.step}
        if from_main(improved):  # every rank joins in saving: the checkpoint gathers each one's random state
            self.save("best.pt")
        barrier()
        return results

    def _final_results(self, seconds: float) -> dict[str, Any]:
        """The last validation and save, then (on the main process) the test split's scores written to
        results.json, printed, and plotted."""
        val = self._validate()
        self.save("last.pt")
        if not self.is_main:
            return {}
        metrics = self._score_test(val)
        results = self._results_record(metrics, seconds)
        write_text_atomically(self.run_dir / "results.json", json.dumps(results, indent=2))  # tables read it
        self._print_report(metrics, results["paper"])
        if self.tcfg.plots:
            self._plot(results["split"])
        return results

    def _score_test(self, val: dict[str, Any]) -> dict[str, Any]:
        """The test split's scores; the final validation's when the test node is the val node (or absent)."""
        if not self.dcfg.test or self.dcfg.test == self.dcfg.val:
            return val
        test_loader, _ = build_split(self.dcfg, self.cfg.model, "test", self.tcfg.batch_size,
                                     class_names=self.class_names)
        return evaluate_model(self.model, test_loader, self.evaluators, self.device,
                              progress=self.tcfg.progress, channels_last=self.tcfg.channels_last)

    def _results_record(self, metrics: dict[str, Any], seconds: float) -> dict[str, Any]:
        """results.json: the scores with what produced them (config, machine, code), as the tables read it."""
        return {
            "model": self.cfg.model.get("name"), "data": self.dcfg.name,
            "primary_metric": self.evaluators[0].primary_metric,
            "split": scored_split(self.dcfg, "test"),  # a test node equal to val was scored by the validation
            "overrides": list(self.cfg.get("overrides", []) or []),
            "metrics": metrics["metrics"], "per_class": metrics["per_class"], "best_val": self.best,
            "steps": self.step, "train_seconds": round(seconds, 1), "seed": int(self.cfg.seed),
            "machine": f"{machine(torch.get_num_threads())}, {os.cpu_count()} cores, {self.device.type}",
            "train_dtype": str(self.amp_dtype or torch.float32).removeprefix("torch."),  # autocast or not, by CPU
            "code": code_version(),
            "paper": paper_figure(self.cfg, metrics["metrics"]),
        }

    def _print_report(self, metrics: dict[str, Any], paper: dict[str, Any] | None) -> None:
        tqdm.write("\n\n".join(metrics["tables"]))
        if paper:
            said = (f"the paper prints no figure ({paper.get('source', 'its source')})" if paper.get("value") is None
                    else f"paper {paper['value']} on {paper.get('data', 'its data')}"
                         f"{'' if paper.get('verified', True) else ' (unverified)'}")
            tqdm.write(f"{paper['metric']}: measured {paper['measured']} on {self.dcfg.name}; {said}")

    def _plot(self, split: str) -> None:
        """Each evaluator's curves, and the final model's detections drawn on the scored split."""
        from zoo.engine.visualize import visualize_checkpoint

        for evaluator in self.evaluators:
            evaluator.plot(self.run_dir / "plots")
        visualize_checkpoint(str(self.run_dir / "checkpoints" / "last.pt"),
                             str(self.run_dir / "plots" / "detections.png"), split=split, device=str(self.device))
