"""Accuracy through the runtimes: a checkpoint scored by zoo-eval eagerly, then exported (ONNX, OpenVINO IR, int8
ONNX) and each file scored by zoo-eval through its runtime, on the same split with the same evaluators.

Usage: python benchmarks/deploy_accuracy.py runs/<run>/checkpoints/best.pt [more checkpoints] [--calibration 100]
           [--image-size H W | --batch-canvas] [--out folder]

Each file is what ``zoo-export checkpoint=... format=onnx|openvino [int8=true calibration_images=N]`` writes, and each
score what ``zoo-eval checkpoint=<file>`` prints (the same API calls). With a keep-ratio test transform the
exported input defaults to the square that holds every resized image; ``--image-size`` sets it (the size of the data
set's resized images, padded as a batch pads them, reproduces the eager figure: see docs/export.md); ``--batch-canvas``
sets it to the shape of the first test batch the eager evaluation pads.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from zoo.apis.evaluate import evaluate_checkpoint
from zoo.apis.export import export_checkpoint
from zoo.apis.run import TrainedRun
from zoo.components import load_components
from zoo.utils.provenance import machine

ROWS = (("ONNX Runtime fp32", {"format": "onnx"}, None), ("OpenVINO fp32", {"format": "openvino"}, None),
        ("OpenVINO, the ONNX file", {"format": "onnx"}, "openvino"),
        ("ONNX Runtime int8", {"format": "onnx", "int8": True}, None))


def score(path: str, runtime: str | None = None) -> tuple[dict, float]:
    cfg = OmegaConf.create({"checkpoint": path, "runtime": runtime, "split": "test", "device": "cpu",
                            "batch_size": None, "data_root": None, "plots": False, "progress": False, "precision": "fp32",
                            "evaluator": None})
    started = time.perf_counter()
    results = evaluate_checkpoint(cfg)
    return results, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--calibration", type=int, default=100, help="training images calibrating int8")
    parser.add_argument("--image-size", type=int, nargs=2, default=None, metavar=("H", "W"))
    parser.add_argument("--batch-canvas", action="store_true",
                        help="export at the padded shape of the eager evaluation's first test batch")
    parser.add_argument("--out", default=None, help="where the exported files go (default: a temporary folder)")
    args = parser.parse_args()
    load_components()
    print(f"{machine(torch.get_num_threads())}; eval on the test split, batch as the run evaluated; int8 calibrated on {args.calibration} "
          "training images")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.out or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for checkpoint in args.checkpoints:
            eager, seconds = score(checkpoint)
            metric = "voc07_map50" if "voc07_map50" in eager["metrics"] else next(iter(eager["metrics"]))
            base = eager["metrics"][metric]
            print(f"\n## {eager['model']} on {eager['data']} {eager['split']}: {checkpoint}")
            print(f"{'row':<26} {metric:>12} {'minus eager':>12} {'eval s':>7}  file")
            print(f"{'torch eager fp32':<26} {base:>12.4f} {'':>12} {seconds:>7.1f}")
            size = list(args.image_size) if args.image_size else None
            if args.batch_canvas:
                trained = TrainedRun(checkpoint, "cpu")
                size = list(next(iter(trained.loader("test"))).images.shape[-2:])
            for row, options, runtime in ROWS:
                stem = f"{eager['model']}{'.int8' if options.get('int8') else ''}"
                out = folder / f"{stem}{'.xml' if options['format'] == 'openvino' else '.onnx'}"
                info = export_checkpoint(OmegaConf.create({
                    "checkpoint": checkpoint, "out": str(out), "batch_size": 1, "split": "test", "data_root": None,
                    "image_size": size,
                    "calibration_images": args.calibration, "int8": False, **options}))
                results, seconds = score(str(out), runtime)
                value = results["metrics"][metric]
                shape = "x".join(map(str, info["input_shape"][2:]))
                print(f"{row:<26} {value:>12.4f} {value - base:>+12.4f} {seconds:>7.1f}  {out.name} (input {shape})")


if __name__ == "__main__":
    main()
