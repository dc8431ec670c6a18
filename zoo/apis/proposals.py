"""Proposals of a split written as a file (zoo.data.proposals): the Python API behind ``zoo-proposals``.

    info = write_split_proposals("runs/<fpn run>/checkpoints/best.pt", "proposals_test.pkl", split="test")
    info = write_selective_search(cfg.data, "proposals_test.pkl", split="test", mode="fast")

``method="rpn"``: a trained two-stage checkpoint's RPN, at its test settings (``max_proposals`` replaces their post-NMS
top-N), each image's boxes mapped back to its own pixels, best first. Selective search: OpenCV contrib's, on a data
config's split (zoo.data.selective_search)."""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from zoo.apis.run import TrainedRun
from zoo.data import build_dataset, to_original
from zoo.data.proposals import write_proposals
from zoo.data.selective_search import DEFAULT_MAX, split_selective_search
from zoo.engine.inference import infer
from zoo.engine.loaders import split_node

METHODS = ("rpn", "selective_search")


def write_split_proposals(checkpoint: str, out: str | Path, split: str = "test", method: str = "rpn",
                          max_proposals: int | None = None, batch_size: int = 1, device: str = "auto",
                          data_root: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Every image of ``split`` through ``method``; the file written to ``out``. Returns what was written: file,
    images, proposals per image (mean) and seconds per image (median, the forward alone)."""
    if method != "rpn":
        raise ValueError(f"zoo-proposals: method={method} with a checkpoint; a checkpoint gives method=rpn's proposals")
    trained = TrainedRun(checkpoint, device, data_root)
    if not hasattr(trained.model, "propose"):
        raise ValueError(f"zoo-proposals: checkpoint '{checkpoint}' is a {trained.run.name} with no RPN (method=rpn "
                         "needs a two-stage model's checkpoint)")
    loader = trained.loader(split, batch_size)
    ids, boxes, seconds = [], [], []

    def propose(images, sizes):
        return trained.model.propose(images, max_proposals=max_proposals, image_sizes=sizes)

    started = time.perf_counter()
    for step in infer(trained.model, loader, trained.device, layout=trained.layout, forward=propose,
                      progress=progress, desc=f"proposals {split}"):
        for found, meta in zip(step.outputs, step.batch.metas):
            ids.append(int(meta.image_id))
            boxes.append(to_original(found.float().cpu(), meta).numpy())
            seconds.append(step.seconds / len(step.batch))
    write_proposals(out, ids, boxes, None, method=f"rpn:{checkpoint}", seconds_per_image=seconds)
    return _written(out, ids, boxes, seconds, started)


def write_selective_search(data, out: str | Path, split: str = "test", mode: str = "fast",
                           max_proposals: int | None = None, progress: bool = True,
                           workers: int | None = None) -> dict[str, Any]:
    """Selective search over every image of the data config's ``split`` (``data``: a data node, as conf/data holds),
    each image in its own pixels, in ``workers`` processes (None: one per core); the file written to ``out``.
    Returns what ``write_split_proposals`` returns."""
    if data is None or not data.get(split):
        raise ValueError(f"zoo-proposals: method=selective_search needs a data set with a '{split}' split: add "
                         "data=<name> (e.g. data=bccd)")
    node, own_split, _ = split_node(data, split)
    dataset = build_dataset(node, split=own_split)
    started = time.perf_counter()
    ids, boxes, seconds = split_selective_search(dataset, mode, max_proposals or DEFAULT_MAX, progress,
                                                 f"proposals {split}", workers)
    write_proposals(out, ids, boxes, None, method=f"selective_search:{mode}", seconds_per_image=seconds)
    return _written(out, ids, boxes, seconds, started)


def _written(out, ids, boxes, seconds, started: float) -> dict[str, Any]:
    return {"file": str(out), "images": len(ids), "mean_proposals": sum(len(b) for b in boxes) / max(len(ids), 1),
            "seconds_per_image": statistics.median(seconds) if seconds else 0.0,
            "seconds": round(time.perf_counter() - started, 1)}
