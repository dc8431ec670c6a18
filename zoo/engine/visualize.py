"""Draw a checkpoint's detections and the ground truth on sample images, as one PNG grid."""
from __future__ import annotations

import itertools
import math
from pathlib import Path

import cv2
import torch
from torchvision.transforms.functional import resize
from torchvision.utils import draw_bounding_boxes, make_grid

from zoo.data.collate import to_original
from zoo.data.image_list import IMAGE_SUFFIXES  # what OpenCV reads, it writes too
from zoo.engine.evaluate import load_run, trained_memory_format
from zoo.tta import build_tta

GROUND_TRUTH, DETECTION, IGNORED = "lime", "red", "gray"


def draw_detections(image: torch.Tensor, boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor,
                    names: list[str]) -> torch.Tensor:
    """(3, H, W) uint8 with each box drawn in red under its class and score."""
    texts = [f"{names[int(c)]} {float(s):.2f}" for c, s in zip(labels.tolist(), scores.float().tolist())]
    return draw_bounding_boxes(image, boxes.float(), labels=texts, colors=DETECTION, width=2)


@torch.inference_mode()
def visualize_checkpoint(checkpoint: str, out: str, split: str = "test", num_images: int = 8,
                         score_threshold: float = 0.3, tile: int = 480, device: str = "auto",
                         data_root: str | None = None, tta: dict | None = None) -> str:
    """The first ``num_images`` of ``split``: ground truth in green (ignored boxes grey), the
    detections scoring at least ``score_threshold`` in red with class and score, each image scaled
    to ``tile`` px on its longer side, in a grid written to ``out`` (PNG). Returns the path."""
    if num_images < 1:
        raise ValueError(f"visualize: num_images must be >= 1, got {num_images}")
    if tile < 16:
        raise ValueError(f"visualize: tile is each image's size in pixels in the grid, at least 16; got {tile}")
    if Path(out).suffix.lower() not in IMAGE_SUFFIXES:
        raise ValueError(f"visualize: out={out} must name an image file ({', '.join(IMAGE_SUFFIXES)}), e.g. grid.png")
    model, loader, run_cfg, _ = load_run(checkpoint, split, min(num_images, 8), device, data_root)
    model = build_tta(model, tta).eval()
    dataset, names = loader.dataset, list(loader.dataset.class_names)
    param = next(model.parameters())
    layout = trained_memory_format(run_cfg)

    def predictions():
        for batch in (b for b in loader if len(b)):  # an empty batch: its images were unreadable (skip_bad)
            yield from zip(model(batch.images.to(param.device).contiguous(memory_format=layout),
                                 image_sizes=batch.image_sizes),
                           batch.metas)

    tiles = []
    for pred, meta in itertools.islice(predictions(), num_images):
        image = torch.from_numpy(dataset.load_image(meta.image_id)).permute(2, 0, 1).contiguous()
        gt = dataset.get_annotation(meta.image_id)
        keep = pred["scores"].float().cpu() >= score_threshold
        boxes = to_original(pred["boxes"].float().cpu()[keep], meta)
        ignore = torch.as_tensor(gt["ignore"], dtype=torch.bool)
        gt_boxes = torch.as_tensor(gt["boxes"], dtype=torch.float32).reshape(-1, 4)
        image = draw_bounding_boxes(image, gt_boxes, colors=[IGNORED if i else GROUND_TRUTH for i in ignore.tolist()],
                                    width=2)
        image = draw_detections(image, boxes, pred["scores"].cpu()[keep], pred["labels"].cpu()[keep], names)
        scale = tile / max(image.shape[-2:])
        tiles.append(resize(image, [round(image.shape[-2] * scale), round(image.shape[-1] * scale)], antialias=True))
    if not tiles:
        raise ValueError(f"visualize: split '{split}' of {checkpoint} has no images")
    canvas = [torch.zeros(3, tile, tile, dtype=torch.uint8) for _ in tiles]
    for frame, image in zip(canvas, tiles):
        frame[:, : image.shape[1], : image.shape[2]] = image
    grid = make_grid(canvas, nrow=math.ceil(math.sqrt(len(canvas))), padding=4)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), grid.permute(1, 2, 0).numpy()[..., ::-1]):  # RGB -> OpenCV's BGR
        raise OSError(f"visualize: could not write {out}")
    return str(out)
