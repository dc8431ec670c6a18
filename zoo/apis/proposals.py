"""Proposals of a split written as a file (zoo.data.proposals): the Python API behind ``zoo-proposals``.

    info = write_split_proposals("runs/<fpn run>/checkpoints/best.pt", "proposals_test.pkl", split="test")

``method="rpn"``: a trained two-stage checkpoint's RPN, at its test settings (``max_proposals`` replaces their post-NMS
top-N), each image's boxes mapped back to its own pixels, best first."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from zoo.apis.run import TrainedRun
from zoo.data import to_original
from zoo.data.proposals import write_proposals
from zoo.engine.inference import infer

METHODS = ("rpn",)


def write_split_proposals(checkpoint: str, out: str | Path, split: str = "test", method: str = "rpn",
                          max_proposals: int | None = None, batch_size: int = 1, device: str = "auto",
                          data_root: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Every image of ``split`` through ``method``; the file written to ``out``. Returns what was written: file,
    images, proposals per image (mean) and seconds per image (median, the forward alone)."""
    if method not in METHODS:
        raise ValueError(f"zoo-proposals: method={method}; available here: {', '.join(METHODS)}")
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
    per_image = sorted(seconds)[len(seconds) // 2] if seconds else 0.0
    return {"file": str(out), "images": len(ids), "mean_proposals": sum(len(b) for b in boxes) / max(len(ids), 1),
            "seconds_per_image": per_image, "seconds": round(time.perf_counter() - started, 1)}
