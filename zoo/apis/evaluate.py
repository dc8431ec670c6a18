"""Score a saved checkpoint with the config stored inside it: the API behind ``zoo-eval``."""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from zoo.apis.run import TrainedRun
from zoo.apis.runtimes import load_run, runtime_for
from zoo.engine.distributed import init_distributed
from zoo.engine.inference import evaluate_model
from zoo.engine.precision import autocast_dtype, compile_for_inference, cpu_has_native_bfloat16
from zoo.engine.preflight import check_components
from zoo.evaluation import build_evaluators
from zoo.evaluation.proposal_recall import ProposalRecallEvaluator
from zoo.tta import build_tta, parse_tta

log = logging.getLogger("zoo.eval")


def evaluate_checkpoint(cfg: DictConfig) -> dict[str, Any] | None:
    """``cfg``: checkpoint (or a file zoo-export wrote), runtime (None: the file's own), split, device, batch_size,
    data_root, plots, progress, precision (fp32, bf16, fp16), compile, and optional tta and evaluator nodes. Under
    torchrun every rank runs its share of the split and rank 0 returns the results; the others return None."""
    amp_dtype = autocast_dtype(cfg.get("precision", "fp32"), "precision")
    tta = cfg.get("tta")
    tta = OmegaConf.to_container(tta, resolve=True) if tta else None
    parse_tta(tta)  # a bad tta or evaluator node fails before the model and the data are loaded
    check_components(None, cfg.get("evaluator"))
    runtime = runtime_for(cfg.checkpoint, cfg.get("runtime"))
    if runtime != "torch":
        shown = {"tta": (tta or {}).get("name", "..."), "compile": cfg.get("compile"), "precision": cfg.get("precision")}
        asked = [f"{key}={shown[key]}" for key, plain in (("tta", None), ("compile", False), ("precision", "fp32"))
                 if cfg.get(key) not in (plain, None)]
        if asked:
            raise ValueError(f"runtime={runtime} runs the exported file as it is: drop {', '.join(asked)} (they apply "
                             "to a checkpoint run by torch)")
    trained = load_run(cfg.checkpoint, cfg.device, cfg.get("data_root"), runtime)
    rank, world = init_distributed(trained.device)  # under torchrun the ranks share the inference; rank 0 scores
    loader = trained.loader(cfg.split, cfg.batch_size)
    run, device = trained.run, trained.device
    evaluator_cfg = cfg.get("evaluator") or run.cfg.evaluator
    evaluators = build_evaluators(list(evaluator_cfg.values()), trained.class_names)
    tested = build_tta(trained.model, tta)
    if device.type == "cpu" and amp_dtype == torch.bfloat16 and not cpu_has_native_bfloat16():
        log.warning(f"precision={cfg.precision}: this CPU has no bfloat16 instructions (AVX-512 BF16 or AMX), so "
                    "torch runs its reference kernels, several times slower than fp32")
    compiled = bool(cfg.get("compile", False))
    if compiled:
        if all(getattr(e, "source", "detections") == "proposals" for e in evaluators):
            raise ValueError("compile=true compiles the detector's forward, but these evaluators score RPN "
                             "proposals (propose() runs uncompiled): drop compile=true")
        tested = compile_for_inference(tested)
    start = time.perf_counter()
    results = evaluate_model(tested, loader, evaluators, device, amp_dtype=amp_dtype,
                             progress=bool(cfg.get("progress", True)), channels_last=run.channels_last)
    seconds = time.perf_counter() - start  # the loop alone: data, forward (with any TTA), scoring
    if rank != 0:
        return None
    if cfg.get("plots", True):
        from hydra.core.hydra_config import HydraConfig

        out = Path(HydraConfig.get().runtime.output_dir) / "plots" if HydraConfig.initialized() else None
        for evaluator in evaluators if out else []:
            evaluator.plot(out)
    results.update({"checkpoint": str(cfg.checkpoint), "split": run.scored_split(cfg.split), "step": trained.step,
                    "precision": cfg.get("precision", "fp32"), "tta": tta.get("name") if tta else None,
                    "model": run.name, "data": run.data.name, "eval_seconds": round(seconds, 3),
                    "compiled": compiled, "runtime": runtime, "ranks": world})
    return results


def proposal_recall(checkpoint: str, split: str = "test", limits: Sequence[int] = (100, 1000), batch_size: int = 8,
                    device: str = "auto", data_root: str | None = None) -> tuple[str, dict[str, float]]:
    """A two-stage checkpoint's RPN average recall on ``split`` (the ``proposal_recall`` evaluator: up to
    max(limits) proposals per image, ignored ground truths left out). Returns (model name, metrics)."""
    trained = TrainedRun(checkpoint, device, data_root)
    evaluator = ProposalRecallEvaluator(trained.class_names, limits)
    results = evaluate_model(trained.model, trained.loader(split, batch_size), [evaluator], trained.device,
                             channels_last=trained.run.channels_last)
    return trained.run.name, results["metrics"]
