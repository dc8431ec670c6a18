"""Run a detector over a data loader and feed the evaluators (predictions in original pixels)."""
from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from zoo.data.collate import to_original


def autocast_context(device: torch.device, dtype: torch.dtype | None):
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


@torch.inference_mode()
def evaluate_model(model: nn.Module, loader, evaluators: Sequence[Any], device: torch.device,
                   amp_dtype: torch.dtype | None = None, progress: bool = True,
                   channels_last: bool = True) -> dict[str, Any]:
    """Returns ``metrics`` (every evaluator's flat metrics), ``per_class`` keyed by each evaluator's
    primary metric (per-class keys clash between evaluators) and the printable ``tables``."""
    dataset = loader.dataset
    fmt = torch.channels_last if channels_last else torch.contiguous_format  # NHWC convs are faster on CPU
    was_training = model.training
    model.eval()
    for evaluator in evaluators:
        evaluator.reset()
    for batch in tqdm(loader, desc="eval", leave=False, disable=not progress, dynamic_ncols=True):
        with autocast_context(device, amp_dtype):
            images = batch.images.to(device, non_blocking=True)
            outputs = model(images.contiguous(memory_format=fmt))
        predictions, ground_truths = [], []
        for out, meta in zip(outputs, batch.metas):
            predictions.append({
                "image_id": meta.image_id,
                "boxes": to_original(out["boxes"].float().cpu(), meta),
                "scores": out["scores"].float().cpu(),
                "labels": out["labels"].cpu(),
            })
            ground_truths.append(dataset.get_annotation(meta.image_id))
        for evaluator in evaluators:
            evaluator.process(ground_truths, predictions)
    model.train(was_training)
    results: dict[str, Any] = {"metrics": {}, "per_class": {}, "tables": []}
    for evaluator in evaluators:
        out = evaluator.evaluate()
        results["tables"].append(evaluator.format_table(out))
        results["per_class"][evaluator.primary_metric] = out.pop("per_class", {})
        results["metrics"].update(out)
    return results
