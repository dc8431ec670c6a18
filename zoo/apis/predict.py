"""Detections on any images from a trained checkpoint: the Python API behind ``zoo-predict``.

    predictor = Predictor("runs/<run>/checkpoints/last.pt", score_threshold=0.3)
    for found in predictor(["a.jpg", rgb_array]):
        found["boxes"], found["scores"], found["classes"]   # boxes xyxy in the image's own pixels
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from zoo.apis.runtimes import load_run
from zoo.config.compose import named_tta
from zoo.data import build_loader, read_image, to_original
from zoo.data.image_list import ImageList
from zoo.data.selective_search import default_workers, image_proposer
from zoo.engine.drawing import draw_detections
from zoo.engine.inference import infer
from zoo.tta import build_tta, parse_tta


class Predictor:
    """A checkpoint's detector (or a file written by zoo-export format=onnx|openvino, run by ``runtime``) with the test
    transform, normalisation and padding it was trained with, so a
    picture is prepared as the evaluation prepared its test images (with keep-ratio data, each batch pads its
    images to the largest: ``batch_size=1`` gives every picture its own size). ``tta`` is a ``tta`` config node
    (views, merge) or the name of one in conf/tta ('flip'); detections below ``score_threshold`` are dropped."""

    def __init__(self, checkpoint: str, device: str = "auto", tta: Mapping[str, Any] | str | None = None,
                 score_threshold: float = 0.0, batch_size: int = 8, skip_bad: bool = False,
                 runtime: str | None = None):
        if batch_size < 1:
            raise ValueError(f"predict: batch_size must be >= 1, got {batch_size}")
        tta = named_tta(tta) if isinstance(tta, str) else tta
        parse_tta(tta)  # a bad node fails before the checkpoint is loaded
        self.trained = load_run(checkpoint, device, runtime=runtime)
        if tta and getattr(self.trained, "runtime", "torch") != "torch":
            raise ValueError(f"predict: tta runs a checkpoint under torch; {checkpoint} runs under "
                             f"{self.trained.runtime}: drop tta")
        self.class_names, self.device = self.trained.class_names, self.trained.device
        self.model = build_tta(self.trained.model, tta).eval()
        self.transform, self.collate = self.trained.test_transform(), self.trained.collate()
        self.score_threshold, self.batch_size, self.skip_bad = score_threshold, batch_size, skip_bad
        self.propose = image_proposer(self.trained.run.model.get("proposals"))

    def __call__(self, images: Sequence[str | np.ndarray]) -> list[dict[str, Any]]:
        """Per image: ``boxes`` (N, 4) float32 xyxy in its own pixels, ``scores`` (N,), ``labels`` (N,)
        class indices, ``classes`` their names, ``file`` and ``size`` (height, width), best first. With
        ``skip_bad`` an image that cannot be read keeps its place as ``{file, error}`` (and a warning)
        instead of stopping the whole call."""
        dataset = ImageList(images, self.class_names, self.transform, skip_bad=self.skip_bad)
        dataset.propose = self.propose  # a detector of given proposals: each picture's own (selective search)
        found = {}
        # selective search (seconds a picture): batches in a loader process per core (a process makes a whole batch),
        # each picture's boxes the same there
        batches = -(-len(dataset) // self.batch_size)
        workers = min(default_workers(), batches) if self.propose is not None and batches > 1 else 0
        loader = build_loader(dataset, self.batch_size, self.collate, num_workers=workers)
        for step in infer(self.model, loader, self.device, layout=self.trained.layout):
            for out, meta in zip(step.outputs, step.batch.metas):
                keep = out["scores"].float().cpu() >= self.score_threshold
                labels = out["labels"].cpu()[keep]
                found[meta.image_id] = {"file": meta.file, "size": tuple(meta.orig_size),
                                        "boxes": to_original(out["boxes"].float().cpu()[keep], meta).numpy(),
                                        "scores": out["scores"].float().cpu()[keep].numpy(), "labels": labels.numpy(),
                                        "classes": [self.class_names[int(c)] for c in labels]}
        return [found.get(i) or {"file": dataset.file(i), "error": "unreadable (skip_bad: left out)"}
                for i in range(len(dataset))]


def as_json(found: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Predictions as plain JSON: per image its file, size and a list of {box, score, label, class}; an image
    left out by skip_bad as its file and the error."""
    return [{"file": f["file"], "error": f["error"]} if "error" in f else
            {"file": f["file"], "height": int(f["size"][0]), "width": int(f["size"][1]),
             "detections": [{"box": [round(float(v), 2) for v in box], "score": round(float(score), 5),
                             "label": int(label), "class": name}
                            for box, score, label, name in zip(f["boxes"], f["scores"], f["labels"], f["classes"])]}
            for f in found]


def draw_found(found: Sequence[Mapping[str, Any]], class_names: list[str], out_dir: str | Path) -> list[str]:
    """Each predicted image with its detections drawn, as ``out_dir/<k>_<name>.png`` (images given as files;
    for arrays, ``zoo.engine.drawing.draw_detections`` draws on the array itself)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, f in enumerate(found):
        if "error" in f:  # left out by skip_bad: nothing to draw on
            continue
        image = torch.from_numpy(read_image(f["file"])).permute(2, 0, 1).contiguous()
        drawn = draw_detections(image, torch.from_numpy(f["boxes"]), torch.from_numpy(f["scores"]),
                                torch.from_numpy(f["labels"]), class_names)
        path = out / f"{k:04d}_{Path(f['file']).stem}.png"
        if not cv2.imwrite(str(path), drawn.permute(1, 2, 0).numpy()[..., ::-1]):  # RGB -> OpenCV's BGR
            raise OSError(f"predict: could not write {path}")
        paths.append(str(path))
    return paths
