"""One trainer for every detector: the loop (model, loader, optimizer, schedule), resumable exactly and DDP-aware;
everything else it does (evaluation, checkpoints, logging, stages, the NaN guard, the report) is a hook."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from zoo.config.compare import run_config_differences
from zoo.config.run import RunConfig
from zoo.config.schema import stored_run_config
from zoo.engine.checkpoint import (RESUME_KEYS, check_finite, load_checkpoint, non_finite_entries, rng_state,
                                   save_checkpoint, set_rng_state)
from zoo.engine.distributed import all_reduce_mean, gather_from_all, init_distributed, local_device
from zoo.engine.hooks import NonFiniteLossError, StagesHook, build_hooks
from zoo.engine.init_from import init_from
from zoo.engine.loaders import build_split
from zoo.engine.optim import build_optimizer, build_scheduler
from zoo.engine.precision import autocast_context, autocast_dtype, cpu_has_native_bfloat16, memory_format
from zoo.engine.preflight import check_components
from zoo.engine.run_folder import RunLock, check_writable, make_run_dir, remove_orphans
from zoo.engine.stages import StageSchedule
from zoo.evaluation import build_evaluators
from zoo.models.detectors import build_detector

log = logging.getLogger("zoo.train")


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, with what was saved and how to continue."""


class Trainer:
    """Builds data, model, optimizer and evaluators from a composed config and runs training.

    The hooks named by ``trainer.hooks`` run first, then ``hooks`` (objects with any of HookBase's events, e.g.
    ``after_step(trainer)``) in the order given."""

    def __init__(self, cfg: DictConfig, run_dir: str | Path, hooks: list[Any] | None = None):
        self.cfg = cfg
        self.run = RunConfig.from_composed(cfg)
        self.tcfg, self.dcfg = self.run.trainer, self.run.data
        self.hooks = build_hooks(self.tcfg.hooks) + list(hooks or [])
        self.run_dir = Path(run_dir)
        make_run_dir(self.run_dir)
        self.device = local_device(cfg.get("device", "auto"))
        self.rank, self.world_size = init_distributed(self.device)
        self.is_main = self.rank == 0
        self.lock = RunLock(self.run_dir)
        if self.is_main:  # before anything is written: two runs in one folder would mix their outputs
            check_writable(self.run_dir)
            self.lock.acquire()
            remove_orphans(self.run_dir)
        torch.manual_seed(self.run.seed + self.rank)
        check_components(cfg.model, cfg.evaluator, self.dcfg.classes)  # config typos fail before the data loads

        self.train_loader, self.train_sampler = build_split(self.run, "train", self.tcfg.batch_size, seed=self.run.seed,
                                                            rank=self.rank, world_size=self.world_size)
        self.class_names = list(self.train_loader.dataset.class_names)
        self.val_loader, _ = build_split(self.run, "val", self.tcfg.batch_size, class_names=self.class_names)
        self.model = build_detector(self.run.detector, num_classes=len(self.class_names))
        if cfg.model.get("init_from") and not cfg.get("resume"):  # a resumed run has its own weights
            for line in init_from(self.model, cfg.model.init_from, self.run.detector, self.class_names, cfg.model):
                if self.is_main:
                    log.info(line)
        self.model.to(self.device)
        self.memory_format = memory_format(self.tcfg.channels_last)
        self.model.to(memory_format=self.memory_format)
        self.optimizer = build_optimizer(self.model, self.tcfg.optimizer)
        self.stages = StageSchedule(self.tcfg.stages, self.model) if self.tcfg.stages else None
        if self.stages and self.world_size > 1:
            raise ValueError("trainer.stages: staged training changes which parameters learn, which DDP does not "
                             "allow; run it in one process")
        if self.stages and not any(isinstance(h, StagesHook) for h in self.hooks):
            raise ValueError("trainer.stages is set but trainer.hooks has no 'stages' hook to apply them")
        self.stage = None  # the stage of the current step, set by the stages hook
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
        self.losses: dict[str, float] = {}  # the last step's, as logged
        self.lr = self.images_per_s = self.train_seconds = 0.0
        self.ends_epoch = False
        self.validation: tuple[int, dict[str, Any]] | None = None  # (step, results) of the last val scoring
        self.results: dict[str, Any] = {}  # the run's record, filled in by the report hook
        self.saved: dict[str, int] = {}  # checkpoint name -> the step this run saved (or resumed) it at
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
        check_finite(state, path)
        self._check_same_run(stored_run_config(state["config"], f"resume: checkpoint '{path}'"), path)
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
        if path.resolve() == (self.run_dir / "checkpoints" / "last.pt").resolve():
            self.saved["last.pt"] = self.step
        log.info("resumed from %s at step %d", path, self.step)

    def _own_rng_state(self, saved: Any, path: Path) -> dict[str, Any]:
        """This rank's random state from a checkpoint holding one per rank (one per process that trained it). Another
        number of processes is refused: the schedule counts steps of the global batch (``trainer.batch_size`` per
        process x processes) and each rank's data shard depends on it. An old checkpoint holds a single state."""
        if not isinstance(saved, list):
            log.warning("resume: %s holds one random state (an older checkpoint); the random streams of a "
                        "multi-process run will not continue exactly", path)
            return saved
        if len(saved) != self.world_size:
            launch = (f"torchrun --nproc_per_node={len(saved)} (or as many processes over several nodes)"
                      if len(saved) > 1 else "one process, without torchrun")
            raise ValueError(f"resume: {path} was trained by {len(saved)} process(es) (a global batch of "
                             f"{self.tcfg.batch_size} x {len(saved)}), this run has {self.world_size} "
                             f"({self.tcfg.batch_size} x {self.world_size}): the schedule and the data order count "
                             f"steps of the global batch, so resume with {launch}")
        return saved[self.rank]

    def _check_same_run(self, stored: DictConfig, path: Path) -> None:
        """Resuming with another model, data set, seed or schedule would silently mix two runs. A key that only
        one side has (the code gained or dropped it since the run started) is warned about, not refused: the
        overrides cannot supply it."""
        differ = run_config_differences(self.cfg, stored, shared_only=True)
        if differ:
            raise ValueError(f"resume: the config differs from the one stored in {path} in {differ}; the run was "
                             f"started with the overrides {list(stored.get('overrides') or [])}, and a resumed run keeps "
                             "its config (zoo-train resume=true hydra.run.dir=<run> takes it from the checkpoint; only "
                             "how the run is shown or saved may change, e.g. trainer.progress)")
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
            "rng": gather_from_all(rng_state(self.device)), "world_size": self.world_size,
            "step": self.step, "best": self.best, "config": OmegaConf.to_yaml(self.cfg, resolve=True),
            "class_names": self.class_names,
        }

    def save(self, name: str) -> None:
        """Called by every rank; rank 0 writes. Weights that are not all finite are never saved: the run stops
        there (every rank sees the same weights), keeping the last good checkpoint."""
        state = self.state_dict()
        bad = non_finite_entries(state["model"])
        if bad:
            raise NonFiniteLossError(f"non-finite weights at step {self.step} ({', '.join(bad[:3])}"
                                     f"{', ...' if len(bad) > 3 else ''}), not saved as {name}; {self.kept_checkpoint()}")
        if self.is_main:
            save_checkpoint(state, self.run_dir / "checkpoints" / name)
        self.saved[name] = self.step

    def kept_checkpoint(self) -> str:
        """What a stopped run leaves to resume from, in words: the last.pt this run saved or resumed from."""
        if "last.pt" in self.saved:
            return f"the last good checkpoint, {self.run_dir / 'checkpoints' / 'last.pt'} (step {self.saved['last.pt']}), is kept"
        return f"no checkpoint of this run was saved before it ({self.run_dir / 'checkpoints'} holds none from it)"

    def call_hooks(self, event: str, *args: Any) -> None:
        for hook in self.hooks:
            handler = getattr(hook, event, None)
            if handler is not None:
                handler(self, *args)

    # ------------------------------------------------------------------ training
    def fit(self) -> dict[str, Any]:
        """Train to ``total_iters``; returns the run's record (the report hook's; empty off the main process)."""
        t0 = time.perf_counter()
        try:
            self.call_hooks("before_train")
            self.net.train()
            while self.step < self.total_iters:
                epoch, offset = divmod(self.step, self.iters_per_epoch)
                self.train_sampler.set_epoch(epoch)
                self.train_sampler.set_start(offset * self.tcfg.batch_size)
                for batch in self.train_loader:
                    tick = time.perf_counter()
                    self.losses = self.run_step(batch)
                    self.step += 1
                    self.images_per_s = len(batch) * self.world_size / max(time.perf_counter() - tick, 1e-9)
                    self.lr = self.optimizer.param_groups[0]["lr"]
                    self.ends_epoch = self.step >= self.total_iters or self.step % self.iters_per_epoch == 0
                    self.call_hooks("after_step")
                    if self.ends_epoch:
                        break
                if self.step % self.iters_per_epoch == 0 or self.step >= self.total_iters:
                    self.call_hooks("after_epoch")
            self.train_seconds = time.perf_counter() - t0
            self.call_hooks("after_train")
        except KeyboardInterrupt:
            raise TrainingInterrupted(f"interrupted at step {self.step}: {self.kept_checkpoint()}; continue with "
                                      f"zoo-train resume=true hydra.run.dir={self.run_dir}") from None
        finally:
            self.call_hooks("close")
            self.lock.release()
        return self.results

    def run_step(self, batch) -> dict[str, float]:
        """One optimizer step on ``batch``; returns each loss term and the weighted ``loss``, averaged over ranks."""
        self.call_hooks("before_step")
        batch = batch.to(self.device, non_blocking=True)
        images = batch.images.contiguous(memory_format=self.memory_format)
        with autocast_context(self.device, self.amp_dtype):
            losses = self.net(images, batch.targets, image_sizes=batch.image_sizes, **batch.model_inputs())
        weights = self.tcfg.loss_weights
        unknown = set(weights) - set(losses)
        if unknown:
            raise ValueError(f"trainer.loss_weights names {sorted(unknown)}, which the model does not return; "
                             f"its losses are {sorted(losses)}")
        stage = self.stage
        counted = [k for k in losses if stage is None or stage.counts(k)]
        if not counted:
            raise ValueError(f"trainer.stages: stage '{stage.name}' counts losses {list(stage.losses)}, but the model's "
                             f"losses are {sorted(losses)}")
        total = sum(losses[k].float() * weights.get(k, 1.0) for k in counted)
        self.call_hooks("after_loss", losses, total)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        norm = None
        if self.tcfg.grad_clip or not self.scaler.is_enabled():  # fp16's scaler skips non-finite steps itself
            self.scaler.unscale_(self.optimizer)
            norm = nn.utils.get_total_norm([p.grad for p in self.model.parameters() if p.grad is not None])
        self.call_hooks("after_backward", norm)  # the NaN guard stops here, before the weights change
        if self.tcfg.grad_clip:
            nn.utils.clip_grads_with_norm_(self.model.parameters(), self.tcfg.grad_clip, norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        values = {k: all_reduce_mean(v.detach()).item() for k, v in losses.items()}
        values["loss"] = sum(values[k] * weights.get(k, 1.0) for k in counted)
        return values
