"""Per-image inference time of a trained checkpoint on real test images (the speed column of a table)."""
from __future__ import annotations

import statistics
import time

import torch

from zoo.engine.evaluate import load_run, trained_memory_format


@torch.inference_mode()
def checkpoint_latency(checkpoint: str, split: str = "test", num_images: int = 20, warmup: int = 3,
                       device: str = "cpu") -> float:
    """Median milliseconds of one forward (network and post-processing, batch 1) over the first
    ``num_images`` images of ``split``, after ``warmup`` untimed ones."""
    model, loader, run_cfg, _ = load_run(checkpoint, split, 1, device)
    model.eval()
    param = next(model.parameters())
    layout = trained_memory_format(run_cfg)  # as zoo-eval runs it
    batches = []
    for batch in (b for b in loader if len(b)):  # an empty batch: its image was unreadable (skip_bad)
        batches.append((batch.images.to(param.device).contiguous(memory_format=layout), batch.image_sizes))
        if len(batches) == num_images + warmup:
            break
    times = []
    for i, (images, sizes) in enumerate(batches):
        start = time.perf_counter()
        model(images, image_sizes=sizes)
        if param.device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1000)
    if not times:
        raise ValueError(f"{checkpoint}: split '{split}' has fewer than {warmup + 1} images to time")
    return statistics.median(times)
