"""Evaluate a saved checkpoint with the config stored inside it."""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from zoo.config import DataConfig, model_node, stored_run_config, validate_section
from zoo.engine.checkpoint import load_checkpoint
from zoo.engine.distributed import local_device
from zoo.engine.inference import (autocast_dtype, compile_for_inference, cpu_has_native_bfloat16, evaluate_model,
                                  memory_format)
from zoo.engine.loaders import build_split, scored_split
from zoo.engine.preflight import check_components
from zoo.evaluation import build_evaluators
from zoo.evaluation.proposal_recall import ProposalRecallEvaluator
from zoo.models.detectors import build_detector
from zoo.tta import build_tta, parse_tta

log = logging.getLogger("zoo.eval")


def load_model(state: Mapping[str, Any], run_cfg: DictConfig, num_classes: int,
               device: str = "auto") -> torch.nn.Module:
    """The checkpoint's detector with its weights, on ``device``, in the memory layout it trained with
    (so the recorded number is reproduced exactly)."""
    model = build_detector(model_node(run_cfg.model), num_classes=num_classes)
    model.load_state_dict(state["model"])
    return model.to(local_device(device), memory_format=trained_memory_format(run_cfg))


def trained_channels_last(run_cfg: DictConfig) -> bool:
    """Whether the run trained in the channels-last layout: its checkpoint is tested in the same one."""
    return bool(run_cfg.trainer.get("channels_last", True))


def trained_memory_format(run_cfg: DictConfig) -> torch.memory_format:
    """The layout the run trained in, which its checkpoint is tested in (see ``trained_channels_last``)."""
    return memory_format(trained_channels_last(run_cfg))


def load_run(checkpoint: str, split: str, batch_size: int | None, device: str = "auto", data_root: str | None = None,
             data_overrides: Mapping[str, Any] | None = None):
    """A checkpoint's model (on ``device``, in the memory layout it trained with) and a loader over
    ``split`` of its data, both rebuilt from the config stored inside it (``data_overrides`` merged
    into its ``data`` node, e.g. ``{"val": {"ignore_below_size": 16}}``). ``batch_size`` None: the
    run's own, which the trainer evaluated with (with keep-ratio data the batch sets each image's
    padding, and so the anchors' grid)."""
    state = load_checkpoint(checkpoint)
    run_cfg = stored_run_config(state["config"])
    with open_dict(run_cfg):
        if data_root:
            _reroot(run_cfg.data, data_root)
        if data_overrides:
            run_cfg.data = OmegaConf.merge(run_cfg.data, data_overrides)
    data = validate_section(run_cfg, "data", DataConfig)
    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val', got '{split}'")
    if batch_size is None:
        batch_size = run_cfg.trainer.batch_size
    loader, _ = build_split(data, run_cfg.model, split, int(batch_size))
    class_names = list(loader.dataset.class_names)
    if list(state.get("class_names", class_names)) != class_names:
        raise ValueError(f"checkpoint classes {state['class_names']} differ from the data's {class_names}")
    return load_model(state, run_cfg, len(class_names), device), loader, run_cfg, state


def evaluate_checkpoint(cfg: DictConfig) -> dict[str, Any]:
    """``cfg``: checkpoint, split, device, batch_size, data_root, plots, precision (fp32, bf16, fp16), compile,
    and optional tta and evaluator nodes."""
    amp_dtype = autocast_dtype(cfg.get("precision", "fp32"), "precision")
    tta = cfg.get("tta")
    tta = OmegaConf.to_container(tta, resolve=True) if tta else None
    parse_tta(tta)  # a bad tta or evaluator node fails before the model and the data are loaded
    check_components(None, cfg.get("evaluator"))
    model, loader, run_cfg, state = load_run(cfg.checkpoint, cfg.split, cfg.batch_size, cfg.device,
                                             cfg.get("data_root"))
    class_names = list(loader.dataset.class_names)
    device = local_device(cfg.device)
    channels_last = trained_channels_last(run_cfg)
    evaluator_cfg = cfg.get("evaluator") or run_cfg.evaluator
    evaluators = build_evaluators(list(evaluator_cfg.values()), class_names)
    tested = build_tta(model, tta)
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
                             channels_last=channels_last)
    seconds = time.perf_counter() - start  # the loop alone: data, forward (with any TTA), scoring
    if cfg.get("plots", True):
        from hydra.core.hydra_config import HydraConfig

        out = Path(HydraConfig.get().runtime.output_dir) / "plots" if HydraConfig.initialized() else None
        for evaluator in evaluators if out else []:
            evaluator.plot(out)
    results.update({"checkpoint": str(cfg.checkpoint), "split": scored_split(run_cfg.data, cfg.split), "step": int(state["step"]),
                    "precision": cfg.get("precision", "fp32"), "tta": tta.get("name") if tta else None,
                    "model": run_cfg.model.get("name"), "data": run_cfg.data.name, "eval_seconds": round(seconds, 3),
                    "compiled": compiled})
    return results


def proposal_recall(checkpoint: str, split: str = "test", limits: Sequence[int] = (100, 1000), batch_size: int = 8,
                    device: str = "auto", data_root: str | None = None) -> tuple[str, dict[str, float]]:
    """A two-stage checkpoint's RPN average recall on ``split`` (the ``proposal_recall`` evaluator: up to
    max(limits) proposals per image, ignored ground truths left out). Returns (model name, metrics)."""
    model, loader, run_cfg, _ = load_run(checkpoint, split, batch_size, device, data_root)
    evaluator = ProposalRecallEvaluator(list(loader.dataset.class_names), limits)
    results = evaluate_model(model, loader, [evaluator], local_device(device),
                             channels_last=trained_channels_last(run_cfg))
    return run_cfg.model.get("name"), results["metrics"]


def _reroot(data: DictConfig, root: str) -> None:
    """Stored configs hold resolved paths: swap the old ``data.root`` folder for the new one in every
    path of every split (VOC ``root``, one or a list, COCO ``ann_file`` and ``image_dir``)."""
    old = data.get("root")
    if not old:
        raise ValueError("data_root: the stored data config has no 'root' to replace")
    old = old.rstrip("/")

    def moved(value):
        if isinstance(value, str) and (value == old or value.startswith(old + "/")):
            return root + value[len(old):]
        return value

    data.root = root
    for split in ("train", "val", "test"):
        node = data.get(split)
        for key, value in (node or {}).items():
            node[key] = [moved(v) for v in value] if isinstance(value, ListConfig) else moved(value)
