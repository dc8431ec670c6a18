"""A trained detector as one ``torch.export`` program (``.pt2``): the API behind ``zoo-export``.

The program holds the whole test-time path (normalisation, network, decoding, NMS) for one input shape, and runs with
torch and torchvision alone (its NMS and RoI ops): ``load_program(path).module()(pixels)``, ``load_program`` from
``zoo.apis.programs`` (a file that needs torch only), which refuses a program that would run code as it loads.
Input: RGB pixels 0-255, float32 (B, 3, H, W), already resized as the test transform would (the sidecar JSON says
how); output: per image a dict of ``boxes`` (N, 4) xyxy in input pixels, ``scores`` (N,) and ``labels`` (N,) class
indices, N varying with the image. The program is written atomically (a temporary file beside it, renamed).
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from zoo.apis.programs import check_program
from zoo.apis.run import TrainedRun
from zoo.engine.precision import memory_format
from zoo.utils.files import write_atomically, write_text_atomically


class PixelDetector(nn.Module):
    """A detector taking RGB pixels 0-255: normalised with its training statistics, in the memory layout
    it trained with (so the program computes what ``zoo-eval`` computes), the whole canvas as the image."""

    def __init__(self, detector: nn.Module, mean: Sequence[float], std: Sequence[float], channels_last: bool):
        super().__init__()
        self.detector = detector.eval()
        self.register_buffer("mean", torch.tensor([float(m) for m in mean]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([float(s) for s in std]).view(1, 3, 1, 1))
        self.memory_format = memory_format(channels_last)

    def forward(self, pixels: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        images = ((pixels - self.mean) / self.std).contiguous(memory_format=self.memory_format)
        return self.detector(images)


def export_size(model_cfg: Mapping[str, Any], image_size: Sequence[int] | None, divisor: int = 1) -> tuple[int, int]:
    """(H, W) the program takes: ``image_size`` if given; else the square the test transform produces
    (``resize``: its size; ``keep_ratio_resize``: its ``max_size``, every resized image fitting in it); rounded
    up to a multiple of ``divisor``, as the data pipeline pads a batch for the model."""
    if image_size is not None:
        if len(image_size) != 2 or min(image_size) < 1:
            raise ValueError(f"export: image_size must be [height, width], got {list(image_size)}")
        size = int(image_size[0]), int(image_size[1])
    else:
        test = model_cfg["transforms"]["test"]
        side = {"resize": "size", "keep_ratio_resize": "max_size"}.get(test["type"])
        if side is None or test.get(side) is None:
            raise ValueError(f"export: no fixed input size follows from the test transform {dict(test)}; "
                             f"pass image_size=[height,width]")
        size = int(test[side]), int(test[side])
    return tuple(-(-side // divisor) * divisor for side in size)


def same_detections(a: Sequence[Mapping[str, torch.Tensor]], b: Sequence[Mapping[str, torch.Tensor]]) -> str | None:
    """None if the two outputs agree (boxes and scores to 1e-5, labels exactly), else what differs. Detections
    of exactly equal score may come in either order (their ranking is not defined), so both sides are
    compared in one order: by score, then label, then box."""
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if x["labels"].shape != y["labels"].shape:
            return f"image {i}: {x['labels'].shape[0]} detections against {y['labels'].shape[0]}"
        x, y = _canonical(x), _canonical(y)
        if not torch.equal(x["labels"], y["labels"]):
            return f"image {i}: labels differ"
        for key in ("boxes", "scores"):
            if not torch.allclose(x[key].float(), y[key].float(), rtol=0, atol=1e-5):
                return f"image {i}: {key} differ by up to {(x[key].float() - y[key].float()).abs().max():.2e}"
    return None


def _canonical(found: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    order = torch.arange(found["scores"].shape[0])
    keys = [-found["scores"].float(), found["labels"].float(), *found["boxes"].float().unbind(1)]
    for key in reversed(keys):  # stable sorts from the last key to the first: a lexicographic order
        order = order[key[order].argsort(stable=True)]
    return {k: v[order] for k, v in found.items()}


def _check_pixels(loader, data_cfg, pad: list[float], size: tuple[int, int], batch: int) -> torch.Tensor:
    """The split's first images as pixels on a canvas of ``size`` filled with ``pad``, the padding the data
    pipeline would add."""
    images = next(iter(loader)).images[:batch].float()
    mean = torch.tensor(list(data_cfg.mean)).view(1, 3, 1, 1)
    std = torch.tensor(list(data_cfg.std)).view(1, 3, 1, 1)
    canvas = torch.tensor(pad).view(1, 3, 1, 1).expand(images.shape[0], 3, *size).clone()
    h, w = min(images.shape[-2], size[0]), min(images.shape[-1], size[1])
    canvas[..., :h, :w] = (images * std + mean)[..., :h, :w]
    return canvas


def export_checkpoint(cfg: DictConfig) -> dict[str, Any]:
    """``cfg``: checkpoint, out (None: ``<run>/export/<checkpoint stem>.pt2``), image_size, batch_size, split,
    data_root. Exports on the CPU, checks the program against the eager model on the split's first images (the
    run's data must be readable; ``data_root`` repoints it), writes the program and a JSON sidecar; returns the
    sidecar."""
    trained = TrainedRun(cfg.checkpoint, "cpu", cfg.data_root)
    loader, run_cfg, model = trained.loader(cfg.split, int(cfg.batch_size)), trained.run.cfg, trained.model
    size = export_size(OmegaConf.to_container(run_cfg.model, resolve=True),
                       OmegaConf.to_container(cfg.image_size) if cfg.image_size is not None else None,
                       loader.collate_fn.size_divisor)
    wrapped = PixelDetector(model, run_cfg.data.mean, run_cfg.data.std, trained.run.channels_last).eval()
    example = torch.rand(int(cfg.batch_size), 3, *size) * 255
    started = time.perf_counter()
    with torch.no_grad():
        program = torch.export.export(wrapped, (example,), strict=False)
    seconds = time.perf_counter() - started
    pad = loader.collate_fn.pad_pixel  # the pixel the model trained with: the mean, or black (pad_fill: black)
    check = _check_pixels(loader, run_cfg.data, pad, size, int(cfg.batch_size))
    real = check.shape[0]
    if real < example.shape[0]:  # a split smaller than the batch: top up with random pixels
        check = torch.cat([check, example[real:]])
    checked_on = f"the first {real} {cfg.split} images" + (
        f" and {check.shape[0] - real} of random pixels" if real < check.shape[0] else "")
    with torch.no_grad():
        differs = same_detections(wrapped(check), program.module()(check))
    if differs is not None:
        raise ValueError(f"export: the exported program does not reproduce the model on {cfg.split} images ({differs})")
    out = Path(cfg.out) if cfg.out else Path(cfg.checkpoint).resolve().parents[1] / "export" / f"{Path(cfg.checkpoint).stem}.pt2"
    out.parent.mkdir(parents=True, exist_ok=True)

    def save(tmp: str) -> None:  # written beside ``out`` and renamed: a failed or killed write leaves the old file
        with open(tmp, "wb") as f:
            torch.export.save(program, f)
        check_program(tmp, str(out))  # what zoo-export writes, the zoo's loader reads

    write_atomically(out, save)
    info = {"program": str(out), "checkpoint": str(cfg.checkpoint),
            "class_names": trained.class_names, "input_shape": [int(cfg.batch_size), 3, *size],
            "input": "RGB pixels 0-255, float32, resized by the test transform below and padded at the bottom/right "
                     "with pad_pixel to input_shape",
            "pad_pixel": pad,
            "test_transform": OmegaConf.to_container(run_cfg.model.transforms.test, resolve=True),
            "mean": list(run_cfg.data.mean), "std": list(run_cfg.data.std),
            "output": "per image {boxes (N, 4) xyxy in input pixels, scores (N,), labels (N,) class indices}",
            "export_seconds": round(seconds, 2), "checked_on": checked_on}
    write_text_atomically(out.with_suffix(".json"), json.dumps(info, indent=2))
    return info
