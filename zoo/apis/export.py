"""A trained detector as one file holding its whole test-time path (normalisation, network, decoding, NMS) for one
input shape: the API behind ``zoo-export``.

Formats: ``pt2``, a ``torch.export`` program run with torch and torchvision alone (``load_program(path).module()``
from ``zoo.apis.programs``, which refuses a program that would run code as it loads); ``onnx``, one ONNX graph (opset
18) for ONNX Runtime or OpenVINO, optionally quantised to int8; ``openvino``, OpenVINO IR (``.xml`` + ``.bin``).
Input: RGB pixels 0-255, float32 (B, 3, H, W), already resized as the test transform would (the sidecar JSON says
how); output: per image ``boxes`` (N, 4) xyxy in input pixels, ``scores`` (N,) and ``labels`` (N,) class indices, N
varying with the image (an ONNX file names them ``boxes_0, scores_0, labels_0, boxes_1...``). Every float32 file is
checked against the eager model on the split's first images before it is written (written atomically: in a
temporary folder beside it, then renamed); the sidecar holds the run's config, so ``zoo-eval`` and ``zoo-predict``
run the file without its checkpoint.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from zoo.apis.onnx_convert import onnx_to_openvino, program_to_onnx, quantise_int8
from zoo.apis.programs import check_program
from zoo.apis.run import TrainedRun
from zoo.apis.runtimes import ExportedDetector, open_session
from zoo.config.run import RunConfig
from zoo.engine.precision import memory_format
from zoo.models.detectors import takes_proposals
from zoo.utils.files import write_atomically, write_text_atomically

FORMATS = {"pt2": ".pt2", "onnx": ".onnx", "openvino": ".xml"}
DEFAULT_SUFFIX = {"pt2": ".pt2", "onnx": ".onnx", "openvino": ".openvino.xml"}  # distinct stems: distinct sidecars
# A runtime adds in another order than torch: scores are compared to RUNTIME_ATOL, boxes (input pixels, through exp()
# of the regressed sizes) to RUNTIME_ATOL plus RUNTIME_BOX_RTOL of the image's scale (0.05 px in a 500-px image).
RUNTIME_ATOL, RUNTIME_BOX_RTOL = 1e-3, 1e-4


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


def same_detections(a: Sequence[Mapping[str, torch.Tensor]], b: Sequence[Mapping[str, torch.Tensor]],
                    atol: float = 1e-5, box_rtol: float = 0.0) -> str | None:
    """None if the two outputs agree (scores to ``atol``, boxes to ``atol`` plus ``box_rtol`` of the image's scale,
    the largest coordinate either output holds; labels exactly), else what differs. Detections of equal score may
    come in either order (their ranking is not defined), and two runtimes may rank scores that differ by rounding
    either way: each detection of ``a`` must have its own partner in ``b``."""
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if x["labels"].shape != y["labels"].shape:
            return f"image {i}: {x['labels'].shape[0]} detections against {y['labels'].shape[0]}"
        x, y = _canonical(x), _canonical(y)
        scale = torch.cat([x["boxes"].float().abs().flatten(), y["boxes"].float().abs().flatten(), torch.zeros(1)]).max()
        box_atol = atol + box_rtol * float(scale)  # a box's error grows with its size (exp of the regressed sizes)
        differs = _in_order_differs(x, y, atol, box_atol)
        if differs is not None and not _all_partnered(x, y, atol, box_atol):
            return f"image {i}: {differs}"
    return None


def _in_order_differs(x: Mapping[str, torch.Tensor], y: Mapping[str, torch.Tensor], atol: float,
                      box_atol: float) -> str | None:
    if not torch.equal(x["labels"], y["labels"]):
        return "labels differ"
    for key, tolerance in (("boxes", box_atol), ("scores", atol)):
        if not torch.allclose(x[key].float(), y[key].float(), rtol=0, atol=tolerance):
            return f"{key} differ by up to {(x[key].float() - y[key].float()).abs().max():.2e}"
    return None


def _all_partnered(x: Mapping[str, torch.Tensor], y: Mapping[str, torch.Tensor], atol: float,
                   box_atol: float) -> bool:
    """Each detection of ``x`` paired with a distinct one of ``y`` of its class, box and score within tolerance
    (greedily, best score first: near-equal detections are interchangeable)."""
    boxes_close = ((x["boxes"].float()[:, None] - y["boxes"].float()[None]).abs() <= box_atol).all(2)
    scores_close = (x["scores"].float()[:, None] - y["scores"].float()[None]).abs() <= atol
    close = boxes_close & scores_close & (x["labels"][:, None] == y["labels"][None])
    taken = torch.zeros(len(y["scores"]), dtype=torch.bool)
    for row in close:
        free = (row & ~taken).nonzero()
        if not len(free):
            return False
        taken[free[0, 0]] = True
    return True


def _canonical(found: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    order = torch.arange(found["scores"].shape[0])
    keys = [-found["scores"].float(), found["labels"].float(), *found["boxes"].float().unbind(1)]
    for key in reversed(keys):  # stable sorts from the last key to the first: a lexicographic order
        order = order[key[order].argsort(stable=True)]
    return {k: v[order].detach() for k, v in found.items()}


def _as_pixels(images: torch.Tensor, run: RunConfig, pad: list[float], size: tuple[int, int],
               batch: int) -> torch.Tensor:
    """A loader's normalised images back to pixels on a canvas of ``size`` filled with ``pad`` (the padding the data
    pipeline adds), ``batch`` images (too few: the last are pad)."""
    images = images[:batch].float()
    mean = torch.tensor(run.input_mean).view(1, 3, 1, 1)
    std = torch.tensor(run.input_std).view(1, 3, 1, 1)
    canvas = torch.tensor(pad).view(1, 3, 1, 1).expand(batch, 3, *size).clone()
    h, w = min(images.shape[-2], size[0]), min(images.shape[-1], size[1])
    canvas[:images.shape[0], :, :h, :w] = (images * std + mean)[..., :h, :w]
    return canvas


def _options(cfg: DictConfig) -> tuple[str, bool, int]:
    fmt, int8 = str(cfg.get("format", "pt2")), bool(cfg.get("int8", False))
    if fmt not in FORMATS:
        raise ValueError(f"export: format={fmt}; expected one of {', '.join(FORMATS)}")
    if int8 and fmt != "onnx":
        raise ValueError(f"export: int8=true quantises an ONNX file (ONNX Runtime's static quantisation); "
                         f"use format=onnx, not format={fmt}")
    count = int(cfg.get("calibration_images", 100))
    if int8 and count < 1:
        raise ValueError(f"export: calibration_images must be >= 1, got {count}")
    return fmt, int8, count


def _out_path(cfg: DictConfig, fmt: str, int8: bool) -> Path:
    suffix = (".int8" if int8 else "") + DEFAULT_SUFFIX[fmt]
    if cfg.out:
        out = Path(cfg.out)
        if out.suffix != FORMATS[fmt]:
            raise ValueError(f"export: out={out} should end in {FORMATS[fmt]} for format={fmt}")
        return out
    return Path(cfg.checkpoint).resolve().parents[1] / "export" / f"{Path(cfg.checkpoint).stem}{suffix}"


def _on_pixels(path: Path, runtime: str, info: dict[str, Any]) -> ExportedDetector:
    """The file as a detector taking pixels as they are (an identity normalisation): what the eager check runs."""
    return ExportedDetector(open_session(path, runtime), {**info, "mean": [0.0] * 3, "std": [1.0] * 3})


def _runtime_check(path: Path, runtime: str, info: dict[str, Any], pixels: torch.Tensor, eager, split: str) -> None:
    """Refuses a file whose detections on ``pixels`` are not the eager model's (``eager``) to RUNTIME_ATOL."""
    differs = same_detections(eager, _on_pixels(path, runtime, info)(pixels), atol=RUNTIME_ATOL,
                              box_rtol=RUNTIME_BOX_RTOL)
    if differs is not None:
        raise ValueError(f"export: the {runtime} file does not reproduce the model on {split} images ({differs})")


def found_again(eager, found, threshold: float = 0.5, top: int | None = None) -> str:
    """How many of the eager model's detections scoring >= ``threshold`` (or, with ``top``, its ``top`` best) the
    other output finds again: a detection of the same class at IoU >= 0.5 (scoring >= ``threshold``; any score with
    ``top``)."""
    from torchvision.ops import box_iou

    kept = total = 0
    for x, y in zip(eager, found):
        a = x["scores"].argsort(descending=True)[:top] if top else (x["scores"] >= threshold).nonzero().flatten()
        b = torch.arange(len(y["scores"])) if top else (y["scores"] >= threshold).nonzero().flatten()
        total += len(a)
        if len(a) and len(b):
            iou = box_iou(x["boxes"][a].float(), y["boxes"][b].float())
            iou[x["labels"][a][:, None] != y["labels"][b][None, :]] = 0
            kept += int((iou.max(1).values >= 0.5).sum())
    which = "best detections" if top else f"detections scoring >= {threshold}"
    return f"{kept} of the eager model's {total} {which} found again (same class, IoU >= 0.5)"


def _move_into_place(tmp: Path, out: Path, suffixes: Sequence[str]) -> None:
    """Renames ``tmp`` (and its companions with ``suffixes``, e.g. OpenVINO's ``.bin``) to ``out``: each rename is
    atomic, so a failed export leaves any earlier file whole."""
    for suffix in suffixes:
        os.replace(tmp.with_suffix(suffix), out.with_suffix(suffix))


def export_checkpoint(cfg: DictConfig) -> dict[str, Any]:
    """``cfg``: checkpoint, format (pt2, onnx, openvino), int8 and calibration_images (format=onnx), out (None:
    ``<run>/export/<checkpoint stem>[.int8].<pt2|onnx|xml>``), image_size, batch_size, split, data_root. Exports on
    the CPU, checks the file against the eager model on the split's first images (the run's data must be readable;
    ``data_root`` repoints it), writes it and a JSON sidecar; returns the sidecar."""
    fmt, int8, calibration_images = _options(cfg)
    trained = TrainedRun(cfg.checkpoint, "cpu", cfg.data_root)
    if takes_proposals(trained.model):  # before the loader, which would compute the split's selective search first
        raise ValueError(f"export: {trained.run.cfg.model.name} detects on given proposals (selective search or a "
                         f"proposals file), and an exported file takes the image alone, so it cannot be exported; "
                         f"zoo-eval and zoo-predict run it from its checkpoint, and a detector with its own RPN "
                         f"(faster_rcnn_lite, fpn_lite) exports")
    batch = int(cfg.batch_size)
    loader, run_cfg, model = trained.loader(cfg.split, batch), trained.run.cfg, trained.model
    size = export_size(OmegaConf.to_container(run_cfg.model, resolve=True),
                       OmegaConf.to_container(cfg.image_size) if cfg.image_size is not None else None,
                       loader.collate_fn.size_divisor)
    wrapped = PixelDetector(model, trained.run.input_mean, trained.run.input_std, trained.run.channels_last).eval()
    example = torch.rand(batch, 3, *size) * 255
    started = time.perf_counter()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*create_unbacked_symint.*")  # torchvision's NMS meta kernel
        program = torch.export.export(wrapped, (example,), strict=False)
    pad = loader.collate_fn.pad_pixel  # the pixel the model trained with: the mean, or black (pad_fill: black)
    first = next(iter(loader)).images
    check = _as_pixels(first, trained.run, pad, size, batch)
    real = min(first.shape[0], batch)
    if real < batch:  # a split smaller than the batch: top up with random pixels
        check[real:] = example[real:]
    checked_on = f"the first {real} {cfg.split} images" + (f" and {batch - real} of random pixels" if real < batch else "")
    with torch.no_grad():
        eager = wrapped(check)
        differs = same_detections(eager, program.module()(check))
    if differs is not None:
        raise ValueError(f"export: the exported program does not reproduce the model on {cfg.split} images ({differs})")
    out = _out_path(cfg, fmt, int8)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas = tuple(first.shape[-2:])
    note = None
    if cfg.image_size is None and run_cfg.model.transforms.test.type == "keep_ratio_resize" and canvas != size:
        note = (f"a keep-ratio model exported at the {size[0]}x{size[1]} square that holds any resized image: near an "
                f"image's bottom and right edges its features see padding where the eager evaluation's batch ended, "
                f"so its detections there can differ; the {cfg.split} split's first batch is {canvas[0]}x{canvas[1]}: "
                f"for images of that size, image_size=[{canvas[0]},{canvas[1]}] reproduces the eager model (and is "
                f"faster)")
    info = {"file": str(out), "format": fmt, "int8": int8, "checkpoint": str(cfg.checkpoint), "step": trained.step,
            "class_names": trained.class_names, "input_shape": [batch, 3, *size],
            "input": "RGB pixels 0-255, float32, resized by the test transform below and padded at the bottom/right "
                     "with pad_pixel to input_shape",
            "pad_pixel": pad,
            "test_transform": OmegaConf.to_container(run_cfg.model.transforms.test, resolve=True),
            "mean": trained.run.input_mean, "std": trained.run.input_std,
            "output": "per image {boxes (N, 4) xyxy in input pixels, scores (N,), labels (N,) class indices}"
                      + ("; ONNX outputs boxes_0, scores_0, labels_0, boxes_1, ..." if fmt != "pt2" else ""),
            "checked_on": checked_on, "note": note}
    if fmt == "pt2":
        def save(tmp: str) -> None:  # written beside ``out`` and renamed: a failed or killed write leaves the old file
            with open(tmp, "wb") as f:
                torch.export.save(program, f)
            check_program(tmp, str(out))  # what zoo-export writes, the zoo's loader reads

        write_atomically(out, save)
    else:
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=".export-") as folder:
            fp32 = Path(folder) / "model.onnx"
            program_to_onnx(program, example, fp32)
            _runtime_check(fp32, "onnxruntime", info, check, eager, cfg.split)
            written, suffixes = fp32, [".onnx"]
            if fmt == "openvino":
                written, suffixes = Path(folder) / "model.xml", [".bin", ".xml"]
                onnx_to_openvino(fp32, written)
                _runtime_check(written, "openvino", info, check, eager, cfg.split)
            if int8:
                written = Path(folder) / "model.int8.onnx"
                calibration = (_as_pixels(b.images, trained.run, pad, size, batch).numpy()
                               for b in trained.calibration_loader(calibration_images, batch))
                quantise_int8(fp32, written, calibration)
                int8_found = _on_pixels(written, "onnxruntime", info)(check)
                info["calibration_images"] = calibration_images
                info["int8_check"] = found_again(eager, int8_found) + f" on {checked_on}"
            _move_into_place(written, out, suffixes)
    info["export_seconds"] = round(time.perf_counter() - started, 2)
    info["config"] = trained.state["config"]  # the run's stored config: zoo-eval and zoo-predict need no checkpoint
    write_text_atomically(out.with_suffix(".json"), json.dumps(info, indent=2))
    return info
