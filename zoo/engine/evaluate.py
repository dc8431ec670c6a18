"""Evaluate a saved checkpoint with the config stored inside it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from zoo.config import DataConfig, model_node, validate_section
from zoo.engine.checkpoint import load_checkpoint
from zoo.engine.distributed import local_device
from zoo.engine.inference import evaluate_model
from zoo.engine.loaders import build_split
from zoo.evaluation import build_evaluators
from zoo.models.detectors import build_detector


def evaluate_checkpoint(cfg: DictConfig) -> dict[str, Any]:
    """``cfg``: checkpoint, split, device, batch_size, data_root, plots and an optional evaluator node."""
    state = load_checkpoint(cfg.checkpoint)
    run_cfg = OmegaConf.create(state["config"])
    if cfg.get("data_root"):
        with open_dict(run_cfg):
            _reroot(run_cfg.data, cfg.data_root)
    data = validate_section(run_cfg, "data", DataConfig)
    if cfg.split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val', got '{cfg.split}'")
    loader, _ = build_split(data, run_cfg.model, cfg.split, int(cfg.batch_size))
    class_names = list(loader.dataset.class_names)
    if list(state.get("class_names", class_names)) != class_names:
        raise ValueError(f"checkpoint classes {state['class_names']} differ from the data's {class_names}")
    device = local_device(cfg.device)
    model = build_detector(model_node(run_cfg.model), num_classes=len(class_names))
    model.load_state_dict(state["model"])
    # The layout the run trained and evaluated with, so the recorded number is reproduced exactly.
    channels_last = bool(run_cfg.trainer.get("channels_last", True))
    model.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    evaluator_cfg = cfg.get("evaluator") or run_cfg.evaluator
    evaluators = build_evaluators(list(evaluator_cfg.values()), class_names)
    precisions = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if cfg.get("precision", "fp32") not in precisions:
        raise ValueError(f"precision must be one of {sorted(precisions)}, got '{cfg.precision}'")
    results = evaluate_model(model, loader, evaluators, device, amp_dtype=precisions[cfg.get("precision", "fp32")],
                             channels_last=channels_last)
    if cfg.get("plots", True):
        from hydra.core.hydra_config import HydraConfig

        out = Path(HydraConfig.get().runtime.output_dir) / "plots" if HydraConfig.initialized() else None
        for evaluator in evaluators if out else []:
            evaluator.plot(out)
    results.update({"checkpoint": str(cfg.checkpoint), "split": cfg.split, "step": int(state["step"]),
                    "precision": cfg.get("precision", "fp32"),
                    "model": run_cfg.model.get("name"), "data": data.name})
    return results


def _reroot(data: DictConfig, root: str) -> None:
    """Stored configs hold resolved paths: swap the old ``data.root`` prefix for the new folder in
    every path of every split (VOC ``root``, COCO ``ann_file`` and ``image_dir``)."""
    old = data.get("root")
    if not old:
        raise ValueError("data_root: the stored data config has no 'root' to replace")
    data.root = root
    for split in ("train", "val", "test"):
        node = data.get(split)
        for key, value in (node or {}).items():
            if isinstance(value, str) and value.startswith(old):
                node[key] = root + value[len(old):]
