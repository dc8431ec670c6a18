"""Per-image inference time of a trained checkpoint on real test images (the speed column of a table)."""
from __future__ import annotations

import itertools
import statistics

from zoo.apis.run import TrainedRun
from zoo.engine.inference import infer


def checkpoint_latency(checkpoint: str, split: str = "test", num_images: int = 20, warmup: int = 3,
                       device: str = "cpu") -> float:
    """Median milliseconds of one forward (network and post-processing, batch 1) over the first
    ``num_images`` images of ``split``, after ``warmup`` untimed ones, in the layout zoo-eval runs it in."""
    trained = TrainedRun(checkpoint, device)
    steps = infer(trained.model, trained.loader(split, 1), trained.device, layout=trained.layout, timed=True)
    times = [step.seconds * 1000 for step in itertools.islice(steps, num_images + warmup)][warmup:]
    if not times:
        raise ValueError(f"{checkpoint}: split '{split}' has fewer than {warmup + 1} images to time")
    return statistics.median(times)
