"""Run a detector over a data loader and feed the evaluators (predictions in original pixels)."""
from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from zoo.data.collate import to_original
from zoo.data.errors import DataWarning


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX-512 BF16 or AMX). Elsewhere oneDNN has no bfloat16
    convolution and torch falls back to its reference kernels, about 15x slower than float32 on 2 AVX2 cores."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


# Both spellings, so zoo-eval's precision= and the trainer's amp_dtype take the same words.
AUTOCAST_DTYPES = {"fp32": None, "float32": None, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
                   "fp16": torch.float16, "float16": torch.float16}


def autocast_dtype(name: str, key: str) -> torch.dtype | None:
    """The autocast dtype a precision name stands for (None: float32, no autocast); ``key`` names the option."""
    if name not in AUTOCAST_DTYPES:
        raise ValueError(f"{key} must be one of {list(AUTOCAST_DTYPES)}, got '{name}'")
    return AUTOCAST_DTYPES[name]


def memory_format(channels_last: bool) -> torch.memory_format:
    """The layout images and weights take: channels-last (NHWC convolutions are faster on the CPU) or plain."""
    return torch.channels_last if channels_last else torch.contiguous_format


def autocast_context(device: torch.device, dtype: torch.dtype | None):
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def compile_for_inference(model: nn.Module) -> nn.Module:
    """``torch.compile`` with frozen weights: inductor folds the parameters in as constants, so on the CPU
    convolution weights are prepacked for oneDNN once instead of on every call. The first call compiles
    (tens of seconds; needs a C++ compiler on the CPU); data-dependent post-processing (NMS) stays eager
    behind graph breaks. Sets inductor's global ``freezing`` flag, which only affects inference."""
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    return torch.compile(model)


def _in_original_pixels(out: dict[str, torch.Tensor], meta) -> dict[str, Any]:
    return {"image_id": meta.image_id, "boxes": to_original(out["boxes"].float().cpu(), meta),
            "scores": out["scores"].float().cpu(), "labels": out["labels"].cpu()}


def _proposer(model: nn.Module, evaluators: Sequence[Any]):
    """For evaluators of RPN proposals: the model's ``propose`` keeping the most any of them needs."""
    if not evaluators:
        return None
    inner = getattr(model, "module", model)  # DistributedDataParallel keeps the model in .module
    if not hasattr(inner, "propose"):
        raise ValueError(f"evaluator {type(evaluators[0]).__name__} scores RPN proposals; "
                         f"{type(inner).__name__} has none (use a two-stage model, without tta)")
    limit = max(e.max_proposals for e in evaluators)
    return lambda images, sizes: inner.propose(images, max_proposals=limit, image_sizes=sizes)


@torch.inference_mode()
def evaluate_model(model: nn.Module, loader, evaluators: Sequence[Any], device: torch.device,
                   amp_dtype: torch.dtype | None = None, progress: bool = True,
                   channels_last: bool = True) -> dict[str, Any]:
    """Returns ``metrics`` (every evaluator's flat metrics), ``per_class`` keyed by each evaluator's
    primary metric (per-class keys clash between evaluators) and the printable ``tables``."""
    dataset = loader.dataset
    fmt = memory_format(channels_last)
    was_training = model.training
    model.eval()
    for evaluator in evaluators:
        evaluator.reset()
    by_source = {source: [e for e in evaluators if getattr(e, "source", "detections") == source]
                 for source in ("detections", "proposals")}
    proposer = _proposer(model, by_source["proposals"])
    skipped = 0
    for batch in tqdm(loader, desc="eval", leave=False, disable=not progress, dynamic_ncols=True):
        skipped += batch.skipped
        if not len(batch):
            continue
        with autocast_context(device, amp_dtype):
            images = batch.images.to(device, non_blocking=True).contiguous(memory_format=fmt)
            outputs = model(images, image_sizes=batch.image_sizes) if by_source["detections"] else []
            proposals = proposer(images, batch.image_sizes) if proposer else []
        ground_truths = [dataset.get_annotation(meta.image_id) for meta in batch.metas]
        predictions = [_in_original_pixels(out, meta) for out, meta in zip(outputs, batch.metas)]
        for evaluator in by_source["detections"]:
            evaluator.process(ground_truths, predictions)
        ranked = [_in_original_pixels({"boxes": boxes, "scores": -torch.arange(len(boxes), dtype=torch.float32),
                                       "labels": torch.zeros(len(boxes), dtype=torch.long)}, meta)
                  for boxes, meta in zip(proposals, batch.metas)]
        for evaluator in by_source["proposals"]:
            evaluator.process(ground_truths, ranked)
    model.train(was_training)
    if skipped:
        warnings.warn(f"{dataset.name}: {skipped} unreadable image(s) left out of the evaluation (skip_bad=true): "
                      "neither their ground truth nor detections count", DataWarning, stacklevel=2)
    results: dict[str, Any] = {"metrics": {}, "per_class": {}, "tables": []}
    for evaluator in evaluators:
        out = evaluator.evaluate()
        results["tables"].append(evaluator.format_table(out))
        results["per_class"][evaluator.primary_metric] = out.pop("per_class", {})
        results["metrics"].update(out)
    return results
