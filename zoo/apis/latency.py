"""Per-image inference time of a trained checkpoint on real test images (the speed column of a table), and for a
detector of given proposals the time its proposals took on the same images, apart."""
from __future__ import annotations

import itertools
import statistics
from typing import Any

from zoo.apis.run import TrainedRun
from zoo.data.proposals import read_proposals
from zoo.engine.inference import infer


def checkpoint_latency(checkpoint: str, split: str = "test", num_images: int = 20, warmup: int = 3,
                       device: str = "cpu") -> float:
    """Median milliseconds of one forward (network and post-processing, batch 1) over the first
    ``num_images`` images of ``split``, after ``warmup`` untimed ones, in the layout zoo-eval runs it in."""
    return checkpoint_timing(checkpoint, split, num_images, warmup, device)["ms_per_image"]


def checkpoint_timing(checkpoint: str, split: str = "test", num_images: int = 20, warmup: int = 3,
                      device: str = "cpu") -> dict[str, Any]:
    """``ms_per_image`` as ``checkpoint_latency`` times it, and ``proposal_ms_per_image``: for a model fed given
    proposals, the median time their method took on the same images (as its file records it), else None."""
    trained = TrainedRun(checkpoint, device)
    loader = trained.loader(split, 1)
    steps = infer(trained.model, loader, trained.device, layout=trained.layout, timed=True)
    times = [step.seconds * 1000 for step in itertools.islice(steps, num_images + warmup)][warmup:]
    if not times:
        raise ValueError(f"{checkpoint}: split '{split}' has fewer than {warmup + 1} images to time")
    return {"ms_per_image": statistics.median(times),
            "proposal_ms_per_image": _proposal_ms(loader.dataset, range(warmup, warmup + len(times)))}


def _proposal_ms(dataset, indices) -> float | None:
    if getattr(dataset, "proposals_file", None) is None:
        return None
    data = read_proposals(dataset.proposals_file)
    if not data.get("seconds_per_image"):
        return None  # a file written without its times
    seconds = dict(zip(data["ids"], data["seconds_per_image"]))
    timed = [seconds[i] for i in (int(dataset.get_annotation(k)["image_id"]) for k in indices) if i in seconds]
    return 1000 * statistics.median(timed) if timed else None
