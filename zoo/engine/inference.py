"""The one inference loop (every command that runs a model over images calls it), and evaluation on top of it."""
from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from zoo.data.collate import to_original
from zoo.data.loader import shard_loader
from zoo.data.errors import DataWarning
from zoo.engine.distributed import gather_from_all, rank_and_world
from zoo.engine.precision import autocast_context, memory_format


@dataclass
class Inferred:
    """One batch through the model: the batch, the model's outputs (in input pixels) and the forward's seconds."""
    batch: Any
    outputs: Any
    seconds: float


def infer(model: nn.Module, loader, device: torch.device | None = None, amp_dtype: torch.dtype | None = None,
          layout: torch.memory_format = torch.contiguous_format, progress: bool = False,
          forward: Callable[[torch.Tensor, list], Any] | None = None, on_skipped: Callable[[int], None] | None = None,
          desc: str = "infer", timed: bool = False) -> Iterator[Inferred]:
    """Each non-empty batch of ``loader`` through ``model`` in inference mode: images moved to ``device`` (the
    model's own by default) in ``layout``, under autocast to ``amp_dtype``. ``forward(images, image_sizes)``
    replaces ``model(images, image_sizes=...)``; ``on_skipped`` hears of the images a batch left out (unreadable,
    skip_bad). ``seconds`` times the forward alone; with ``timed`` the GPU is synchronised first, so it is the
    forward's whole time (otherwise a GPU's queued work may finish later). The model is put in eval mode for the loop
    and given back in the mode it had."""
    device = device if device is not None else next(model.parameters()).device
    forward = forward or (lambda images, sizes, **extra: model(images, image_sizes=sizes, **extra))
    was_training = model.training
    model.eval()
    try:
        for batch in tqdm(loader, desc=desc, leave=False, disable=not progress, dynamic_ncols=True):
            if on_skipped is not None and getattr(batch, "skipped", 0):
                on_skipped(batch.skipped)
            if not len(batch):  # every image of the batch was unreadable (skip_bad)
                continue
            with torch.inference_mode(), autocast_context(device, amp_dtype):
                images = batch.images.to(device, non_blocking=True).contiguous(memory_format=layout)
                start = time.perf_counter()
                extra = batch.model_inputs(device)  # proposals, where the data gives them (Fast R-CNN)
                outputs = forward(images, batch.image_sizes, **extra)
                if timed and device.type == "cuda":
                    torch.cuda.synchronize(device)
                seconds = time.perf_counter() - start
            yield Inferred(batch, outputs, seconds)
    finally:
        model.train(was_training)

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
    primary metric (per-class keys clash between evaluators) and the printable ``tables``.

    Under torchrun every rank must call it: each runs its share of ``loader``'s batches (whole batches, as one process
    makes them: ``shard_loader``), rank 0 gathers every image's detections, scores them in the one-process order and
    returns the results; the other ranks return empty ones. The figure is the one process's, to the last digit."""
    dataset = loader.dataset
    rank, world = rank_and_world()
    if world > 1:
        loader = shard_loader(loader, rank, world)
    for evaluator in evaluators:
        evaluator.reset()
    by_source = {source: [e for e in evaluators if getattr(e, "source", "detections") == source]
                 for source in ("detections", "proposals")}
    proposer = _proposer(model, by_source["proposals"])

    def forward(images, sizes, **extra):
        outputs = model(images, image_sizes=sizes, **extra) if by_source["detections"] else []
        return outputs, (proposer(images, sizes) if proposer else [])

    skipped, kept = [], []  # kept: this rank's scored batches, when rank 0 scores them after gathering
    for step in infer(model, loader, device, amp_dtype, memory_format(channels_last), progress and rank == 0,
                      forward, skipped.append, desc="eval"):
        batch, (outputs, proposals) = step.batch, step.outputs
        scored = ([meta.image_id for meta in batch.metas],
                  [_in_original_pixels(out, meta) for out, meta in zip(outputs, batch.metas)],
                  [_in_original_pixels({"boxes": boxes, "scores": -torch.arange(len(boxes), dtype=torch.float32),
                                        "labels": torch.zeros(len(boxes), dtype=torch.long)}, meta)
                   for boxes, meta in zip(proposals, batch.metas)])
        if world > 1:
            kept.append(scored)
        else:
            _score(dataset, by_source, *scored)
    if world > 1:
        shares = gather_from_all((kept, sum(skipped)))
        skipped = [sum(count for _, count in shares)]
        if rank != 0:
            return {"metrics": {}, "per_class": {}, "tables": []}
        # in the one-process order: evaluation loaders read in index order (image_id is the index), in whole batches
        for scored in sorted((b for batches, _ in shares for b in batches), key=lambda scored: min(scored[0])):
            _score(dataset, by_source, *scored)
    if sum(skipped):
        warnings.warn(f"{dataset.name}: {sum(skipped)} unreadable image(s) left out of the evaluation (skip_bad=true): "
                      "neither their ground truth nor detections count", DataWarning, stacklevel=2)
    results: dict[str, Any] = {"metrics": {}, "per_class": {}, "tables": []}
    for evaluator in evaluators:
        out = evaluator.evaluate()
        results["tables"].append(evaluator.format_table(out))
        results["per_class"][evaluator.primary_metric] = out.pop("per_class", {})
        results["metrics"].update(out)
    return results


def _score(dataset, by_source, image_ids, predictions, ranked) -> None:
    ground_truths = [dataset.get_annotation(image_id) for image_id in image_ids]
    for evaluator in by_source["detections"]:
        evaluator.process(ground_truths, predictions)
    for evaluator in by_source["proposals"]:
        evaluator.process(ground_truths, ranked)
