"""Detections drawn on images: one image's boxes, and a grid of a model's detections beside the ground truth."""
from __future__ import annotations

import itertools
import math
from pathlib import Path

import cv2
import torch
from torch import nn
from torchvision.transforms.functional import resize
from torchvision.utils import draw_bounding_boxes, make_grid

from zoo.data.collate import to_original
from zoo.data.image_list import IMAGE_SUFFIXES  # what OpenCV reads, it writes too
from zoo.engine.inference import infer

GROUND_TRUTH, DETECTION, IGNORED = "lime", "red", "gray"


def draw_detections(image: torch.Tensor, boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor,
                    names: list[str]) -> torch.Tensor:
    """(3, H, W) uint8 with each box drawn in red under its class and score."""
    texts = [f"{names[int(c)]} {float(s):.2f}" for c, s in zip(labels.tolist(), scores.float().tolist())]
    return draw_boxes(image, boxes.float(), labels=texts, colors=DETECTION, width=2)


def draw_boxes(image: torch.Tensor, boxes: torch.Tensor, **options) -> torch.Tensor:
    """torchvision's draw_bounding_boxes, with an image of no boxes returned as it is (torchvision warns on each)."""
    return draw_bounding_boxes(image, boxes, **options) if len(boxes) else image


def check_grid_options(out: str | Path, num_images: int, tile: int) -> None:
    """The grid's options, checked before anything is loaded."""
    if num_images < 1:
        raise ValueError(f"visualize: num_images must be >= 1, got {num_images}")
    if tile < 16:
        raise ValueError(f"visualize: tile is each image's size in pixels in the grid, at least 16; got {tile}")
    if Path(out).suffix.lower() not in IMAGE_SUFFIXES:
        raise ValueError(f"visualize: out={out} must name an image file ({', '.join(IMAGE_SUFFIXES)}), e.g. grid.png")


def write_detection_grid(model: nn.Module, loader, out: str | Path, num_images: int = 8,
                         score_threshold: float = 0.3, tile: int = 480,
                         layout: torch.memory_format = torch.contiguous_format, source: str | None = None) -> str:
    """The first ``num_images`` of ``loader``: ground truth in green (ignored boxes grey), the detections scoring
    at least ``score_threshold`` in red with class and score, each image scaled to ``tile`` px on its longer side,
    in a grid written to ``out`` (PNG). Returns the path. ``source`` names the images in an error (the data set's
    name by default)."""
    check_grid_options(out, num_images, tile)
    dataset, names = loader.dataset, list(loader.dataset.class_names)
    found = ((pred, meta) for step in infer(model, loader, layout=layout)
             for pred, meta in zip(step.outputs, step.batch.metas))
    tiles = []
    for pred, meta in itertools.islice(found, num_images):
        image = torch.from_numpy(dataset.load_image(meta.image_id)).permute(2, 0, 1).contiguous()
        gt = dataset.get_annotation(meta.image_id)
        keep = pred["scores"].float().cpu() >= score_threshold
        boxes = to_original(pred["boxes"].float().cpu()[keep], meta)
        ignore = torch.as_tensor(gt["ignore"], dtype=torch.bool)
        gt_boxes = torch.as_tensor(gt["boxes"], dtype=torch.float32).reshape(-1, 4)
        image = draw_boxes(image, gt_boxes, colors=[IGNORED if i else GROUND_TRUTH for i in ignore.tolist()],
                           width=2)
        image = draw_detections(image, boxes, pred["scores"].cpu()[keep], pred["labels"].cpu()[keep], names)
        scale = tile / max(image.shape[-2:])
        tiles.append(resize(image, [round(image.shape[-2] * scale), round(image.shape[-1] * scale)], antialias=True))
    if not tiles:
        raise ValueError(f"visualize: {source or dataset.name} has no images")
    canvas = [torch.zeros(3, tile, tile, dtype=torch.uint8) for _ in tiles]
    for frame, image in zip(canvas, tiles):
        frame[:, : image.shape[1], : image.shape[2]] = image
    grid = make_grid(canvas, nrow=math.ceil(math.sqrt(len(canvas))), padding=4)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), grid.permute(1, 2, 0).numpy()[..., ::-1]):  # RGB -> OpenCV's BGR
        raise OSError(f"visualize: could not write {out}")
    return str(out)
