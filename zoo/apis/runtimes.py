"""Exported detectors run by ONNX Runtime or OpenVINO, behind the zoo's forward contract, so ``zoo-eval`` and
``zoo-predict`` score and run them with the same loaders, evaluators and outputs as a checkpoint.

``load_run(path, runtime=...)`` gives a checkpoint's ``TrainedRun`` or an exported file's ``ExportedRun``; both have
``model`` (images normalised as the loaders give them, in; per image boxes/scores/labels in input pixels, out),
``run``, ``class_names``, ``loader``, ``test_transform`` and ``collate``. An exported file takes one input shape (its
JSON sidecar's ``input_shape``): a batch is run in chunks of that batch size, each image placed at the top left of a
canvas of that size filled with the run's pad pixel, as the data pipeline pads a batch. The file's boxes are clipped
to each image's own size afterwards (the eager model clips them to it before its NMS; with images smaller than the
canvas the two can differ slightly).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from zoo.apis.onnx_convert import deploy_module, split_outputs
from zoo.apis.run import RunData, TrainedRun
from zoo.config.run import RunConfig
from zoo.engine.distributed import local_device

RUNTIMES = ("torch", "onnxruntime", "openvino")
_EXPORTED = {".onnx": ("onnxruntime", "openvino"), ".xml": ("openvino",)}


def runtime_for(path: str | Path, runtime: str | None = None) -> str:
    """The runtime that runs ``path``: ``runtime`` if given and able to read the file, else the file's own (an ONNX
    file: onnxruntime, OpenVINO IR ``.xml``: openvino, anything else is a checkpoint: torch)."""
    if runtime is not None and runtime not in RUNTIMES:
        raise ValueError(f"runtime={runtime}: expected one of {', '.join(RUNTIMES)}")
    suffix = Path(path).suffix
    able = _EXPORTED.get(suffix, ("torch",))
    if runtime is None:
        return able[0]
    if runtime not in able:
        hint = ("export it first: zoo-export checkpoint=... format=onnx" if able == ("torch",)
                else f"a {suffix} file runs under {' or '.join(able)}")
        raise ValueError(f"runtime={runtime} cannot run {path} ({hint})")
    return runtime


def open_session(path: str | Path, runtime: str, threads: int | None = None) -> Callable[[np.ndarray], list]:
    """``path`` loaded by ``runtime`` on the CPU with ``threads`` (None: torch's thread count), as a function from a
    pixels array to the file's outputs. OpenVINO is held to float32 (on CPUs with bfloat16 it would otherwise run in
    bfloat16 and not reproduce the model)."""
    threads = int(threads or torch.get_num_threads())
    if runtime == "onnxruntime":
        ort = deploy_module("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.log_severity_level = 3  # errors only: its shape-inference notes on the NMS outputs are noise
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return lambda pixels: session.run(None, {"pixels": pixels})
    if runtime == "openvino":
        ov = deploy_module("openvino")
        compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                              "INFERENCE_NUM_THREADS": threads})
        request = compiled.create_infer_request()

        def run(pixels: np.ndarray) -> list:
            result = request.infer({0: pixels})
            return [np.array(result[i]) for i in range(len(compiled.outputs))]  # copies: the request reuses buffers
        return run
    raise ValueError(f"runtime={runtime}: expected onnxruntime or openvino")


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The JSON zoo-export wrote beside an exported file."""
    sidecar = Path(path).with_suffix(".json")
    if not sidecar.is_file():
        raise ValueError(f"{path}: its sidecar {sidecar} is missing (zoo-export writes it beside the file; it holds "
                         "the input shape, the normalisation and the run's config)")
    try:
        info = json.loads(sidecar.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{sidecar}: not valid JSON ({e})") from None
    missing = [k for k in ("input_shape", "mean", "std", "pad_pixel", "class_names", "config") if k not in info]
    if missing:
        raise ValueError(f"{sidecar}: missing {', '.join(missing)} (written by an older zoo-export? export again)")
    return info


class ExportedDetector(nn.Module):
    """An exported file as a detector: normalised images (B, 3, h, w) with h, w at most the file's input size in,
    per image ``boxes``/``scores``/``labels`` (in input pixels, clipped to ``image_sizes``) out."""

    def __init__(self, session: Callable[[np.ndarray], list], info: dict[str, Any], name: str = "exported file"):
        super().__init__()
        self.session, self.name = session, name
        self.batch, _, self.height, self.width = (int(v) for v in info["input_shape"])
        self.register_buffer("mean", torch.tensor(info["mean"], dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(info["std"], dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("pad", torch.tensor(info["pad_pixel"], dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor, image_sizes: Sequence[tuple[int, int]] | None = None):
        n, _, h, w = images.shape
        if h > self.height or w > self.width:
            raise ValueError(f"{self.name} takes images up to {self.height}x{self.width} (its input shape), got "
                             f"{h}x{w}: export again with image_size=[{h},{w}] or larger")
        pixels = images.float().contiguous() * self.std + self.mean  # the file normalises pixels itself
        found = []
        for start in range(0, n, self.batch):
            chunk = pixels[start:start + self.batch]
            canvas = self.pad.expand(self.batch, 3, self.height, self.width).clone()
            canvas[:len(chunk), :, :h, :w] = chunk
            found += split_outputs(self.session(canvas.numpy()), len(chunk))
        sizes = image_sizes if image_sizes is not None else [(h, w)] * n
        for out, (height, width) in zip(found, sizes):
            out["labels"] = out["labels"].long()
            out["boxes"][:, 0::2] = out["boxes"][:, 0::2].clamp(0, width)
            out["boxes"][:, 1::2] = out["boxes"][:, 1::2].clamp(0, height)
        return found


class ExportedRun(RunData):
    """A file written by ``zoo-export format=onnx|openvino`` loaded for ``runtime``, with the run's config its
    sidecar holds (``data_root`` repoints the run's data): the same interface as ``TrainedRun``."""

    def __init__(self, path: str | Path, runtime: str, device: str = "auto", data_root: str | None = None,
                 threads: int | None = None):
        self.checkpoint = str(path)
        if not Path(path).is_file():
            raise ValueError(f"{path}: no such file")
        info = read_sidecar(path)
        if info.get("int8") and runtime == "openvino":
            raise ValueError(f"{path}: OpenVINO 2026.4 cannot compile ONNX Runtime's int8 file (its shape inference "
                             "fails on the quantised graph); run it with runtime=onnxruntime")
        self.info, self.runtime = info, runtime
        self.run = RunConfig.from_stored(info["config"], data_root, where=f"the sidecar of '{path}'")
        self.class_names = list(info["class_names"])
        self.step = int(info.get("step", 0))
        self.device = torch.device("cpu") if device == "auto" else local_device(device)
        if self.device.type != "cpu":
            raise ValueError(f"runtime={runtime} runs on the CPU: drop device={device}")
        self.layout = torch.contiguous_format
        self.model = ExportedDetector(open_session(path, runtime, threads), info, name=str(path)).eval()


def load_run(path: str | Path, device: str = "auto", data_root: str | None = None,
             runtime: str | None = None) -> RunData:
    """A checkpoint (``.pt``, run by torch) or a file written by ``zoo-export format=onnx|openvino`` (run by ONNX
    Runtime or OpenVINO; ``runtime`` chooses for an ONNX file), loaded with its run's config."""
    chosen = runtime_for(path, runtime)
    if chosen == "torch":
        return TrainedRun(path, device, data_root)
    return ExportedRun(path, chosen, device, data_root)
