"""CPU deployment, side by side in one process at batch 1: torchvision eager fp32 (where torchvision has the model),
zoo eager fp32 (channels-last), zoo compiled, ONNX Runtime fp32, OpenVINO fp32 and ONNX Runtime int8, with each row's
detections compared with zoo eager's.

Usage: python benchmarks/deploy_cpu.py [--models ssd300 refinedet320 fpn_r50 ssd_lite ...] [--rounds 10]
           [--threads 2] [--checkpoint ssd_lite=runs/<run>/checkpoints/best.pt ...] [--calibration 32]

Every row runs the whole test-time path on pixels (normalisation, network, decoding, NMS). The ONNX and OpenVINO files
are what ``zoo-export format=onnx|openvino [int8=true]`` writes (the same functions); int8 is calibrated on
``--calibration`` BCCD trainval images. The input is BCCD's first test image resized to the model's input square
(random pixels where the data is missing). ssd300 gets torchvision's ssd300_vgg16 with the same random weights (as
``ssd_inference.py``: a background bias makes most boxes background, as in a trained model); fpn_r50 gets
torchvision's fasterrcnn_resnet50_fpn with the same random weights at ``--fpn-size`` (their anchors differ by
convention, so their detections are close, not equal; ``two_stage_speed.py``). A model given ``--checkpoint`` runs
its trained weights; the others random ones (refinedet320: 20 classes, the lite models: BCCD's 3). Rounds alternate
between the rows; medians are printed, with each row's speed-up over torchvision's eager fp32 and over zoo's eager.
"""
from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from pathlib import Path

import cv2
import torch
from omegaconf import OmegaConf

from bench_timing import medians, time_alternating
from zoo.apis.export import (RUNTIME_ATOL, RUNTIME_BOX_RTOL, PixelDetector, export_size, found_again,
                             same_detections)
from zoo.apis.onnx_convert import onnx_to_openvino, program_to_onnx, quantise_int8, split_outputs
from zoo.apis.run import TrainedRun
from zoo.apis.runtimes import open_session
from zoo.components import load_components
from zoo.config import model_node
from zoo.config.compose import compose_config
from zoo.config.paths import PROJECT
from zoo.data import read_image
from zoo.engine.precision import compile_for_inference
from zoo.models.detectors import build_detector
from zoo.utils.provenance import machine

IMAGENET_MEAN, IMAGENET_STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
CLASSES = {"refinedet320": 20, "refinedet512": 20, "ssd512": 20}


def bccd_images(root: Path, split: str, count: int, size: tuple[int, int]) -> list[torch.Tensor] | None:
    """``count`` images spread over a BCCD split, resized to ``size`` (H, W), as float pixels (1, 3, H, W)."""
    names_file = root / "ImageSets" / "Main" / f"{split}.txt"
    if not names_file.is_file():
        return None
    names = names_file.read_text().split()
    picked = [names[int(i * len(names) / count)] for i in range(min(count, len(names)))]
    out = []
    for name in picked:
        image = cv2.resize(read_image(str(root / "JPEGImages" / f"{name}.jpg")), (size[1], size[0]),
                           interpolation=cv2.INTER_LINEAR)
        out.append(torch.from_numpy(image).permute(2, 0, 1)[None].float().contiguous())
    return out


def build(name: str, checkpoint: str | None, fpn_size: int):
    """(zoo detector, mean, std, input (H, W), torchvision model or None, torchvision's label offset, what it is)."""
    if name == "ssd300":
        from ssd_inference import TV_MEAN, build_pair

        tv, zoo = build_pair(21, 4.0)
        return zoo, [255 * m for m in TV_MEAN], [1.0] * 3, (300, 300), tv, "random weights, torchvision's"
    if name == "fpn_r50":
        from two_stage_speed import build_pair

        tv, zoo = build_pair(20, fpn_size)
        return (zoo, IMAGENET_MEAN, IMAGENET_STD, (fpn_size, fpn_size), tv.eval(),
                f"random weights, torchvision's, at {fpn_size}x{fpn_size}")
    if checkpoint:
        trained = TrainedRun(checkpoint, "cpu")
        model_cfg = OmegaConf.to_container(trained.run.model, resolve=True)
        return (trained.model.to(memory_format=torch.contiguous_format), list(trained.run.data.mean),
                list(trained.run.data.std), export_size(model_cfg, None), None, f"trained: {checkpoint}")
    torch.manual_seed(0)
    cfg = compose_config("train", [f"model={name}"])
    model = build_detector(model_node(cfg.model), CLASSES.get(name, 3)).eval()
    return (model, IMAGENET_MEAN, IMAGENET_STD, export_size(OmegaConf.to_container(cfg.model, resolve=True), None),
            None, "random weights")


def compare(eager, found, exact: bool) -> str:
    """Equal to zoo eager's (fp32 rows must be); otherwise how many of its 20 best detections are found again."""
    differs = same_detections(eager, found, atol=RUNTIME_ATOL, box_rtol=RUNTIME_BOX_RTOL)
    if differs is None:
        return (f"equal to zoo eager's (scores within {RUNTIME_ATOL:g}; boxes within {RUNTIME_ATOL:g} px + "
                f"{RUNTIME_BOX_RTOL:g} of the image's scale)")
    return (f"NOT EQUAL ({differs}); " if exact else "") + found_again(eager, found, top=20)


def bench_model(name: str, args, folder: Path) -> None:
    detector, mean, std, size, tv, what = build(name, args.checkpoint.get(name), args.fpn_size)
    root = Path(args.data)
    pixels = (bccd_images(root, "test", 1, size) or [torch.rand(1, 3, *size) * 255])[0]
    calibration = bccd_images(root, "trainval", args.calibration, size) or [torch.rand(1, 3, *size) * 255]
    eager = PixelDetector(detector, mean, std, channels_last=True).eval()
    eager.detector.to(memory_format=torch.channels_last)
    torch._dynamo.reset()  # a second model of the same class would recompile its code, which inductor's freezing fails
    compiled_detector = compile_for_inference(copy.deepcopy(eager.detector))  # as `zoo-eval compile=true`

    def compiled(images):  # normalised outside (inductor refuses the wrapper's output); in the time all the same
        return compiled_detector(((images - eager.mean) / eager.std).contiguous(memory_format=torch.channels_last))
    with torch.inference_mode():
        started = time.perf_counter()
        compiled(pixels)
        compiling = time.perf_counter() - started
    started = time.perf_counter()
    with torch.no_grad():
        program = torch.export.export(eager, (pixels,), strict=False)
    fp32, int8, xml = folder / f"{name}.onnx", folder / f"{name}.int8.onnx", folder / f"{name}.xml"
    program_to_onnx(program, pixels, fp32)
    exported = time.perf_counter() - started
    onnx_to_openvino(fp32, xml)
    started = time.perf_counter()
    quantise_int8(fp32, int8, (image.numpy() for image in calibration))
    quantised = time.perf_counter() - started
    sessions = {"ONNX Runtime fp32": open_session(fp32, "onnxruntime", args.threads),
                "OpenVINO fp32": open_session(xml, "openvino", args.threads),
                "ONNX Runtime int8": open_session(int8, "onnxruntime", args.threads)}
    runners = {}
    if tv is not None:
        runners["torchvision eager fp32"] = lambda: tv([pixels[0] / 255.0])
    runners["zoo eager fp32 NHWC"] = lambda: eager(pixels)
    runners["zoo compiled fp32"] = lambda: compiled(pixels)
    for row, session in sessions.items():
        runners[row] = (lambda s=session: split_outputs(s(pixels.numpy()), 1))
    with torch.inference_mode():
        reference = eager(pixels)
        notes = {}
        for row, run in runners.items():
            found = run()
            if row.startswith("torchvision"):
                found = [{"boxes": f["boxes"], "scores": f["scores"], "labels": f["labels"] - 1} for f in found]
            notes[row] = (f"{len(found[0]['scores'])} detections; "
                          + compare(reference, found, exact="fp32" in row and not row.startswith("torchvision")))
        times = medians(time_alternating(runners, args.rounds))
    sizes = {"fp32": os.path.getsize(fp32) / 2**20, "int8": os.path.getsize(int8) / 2**20}
    print(f"\n## {name} ({what}), input {size[0]}x{size[1]}")
    print(f"ONNX export {exported:.1f} s ({sizes['fp32']:.1f} MB), int8 quantisation on {len(calibration)} images "
          f"{quantised:.1f} s ({sizes['int8']:.1f} MB), first compiled call (compiling) {compiling:.1f} s")
    base = times.get("torchvision eager fp32")
    print(f"{'row':<24} {'median ms':>10} {'vs torchvision':>15} {'vs zoo eager':>13}  detections")
    for row, ms in times.items():
        over_tv = f"{base / ms:.2f}x" if base else "-"
        print(f"{row:<24} {ms:>10.1f} {over_tv:>15} {times['zoo eager fp32 NHWC'] / ms:>12.2f}x  {notes[row]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["ssd300", "refinedet320", "fpn_r50", "ssd_lite",
                                                        "refinedet_lite", "faster_rcnn_lite", "fpn_lite",
                                                        "cornernet_lite"])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calibration", type=int, default=32, help="BCCD trainval images calibrating int8")
    parser.add_argument("--fpn-size", type=int, default=512)
    parser.add_argument("--data", default=str(Path(PROJECT).parent / "shared" / "datasets" / "bccd"))
    parser.add_argument("--checkpoint", nargs="*", default=[], help="model=path: that model's trained weights")
    args = parser.parse_args()
    args.checkpoint = dict(item.split("=", 1) for item in args.checkpoint)
    torch.set_num_threads(args.threads)
    load_components()
    print(f"{machine(args.threads)}, batch 1, {args.rounds} alternating rounds; int8: ONNX Runtime static "
          f"quantisation (QDQ, per-channel weights, min-max calibration)")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            bench_model(name, args, Path(folder))


if __name__ == "__main__":
    main()
