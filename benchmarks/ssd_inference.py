"""SSD300 inference: zoo vs torchvision's ssd300_vgg16, same weights, same outputs, side by side.

Usage: python benchmarks/ssd_inference.py [--rounds 10] [--threads 2] [--classes 21]

Both models get the same randomly initialised weights (renamed by zoo-import's torchvision key map) and
the same default boxes (torchvision's COCO scales and steps), so their detections must agree;
the script checks that, then times batch-1 inference in alternating rounds (fair on a noisy
machine) and prints the medians and ratios. zoo's time includes input normalisation, which
torchvision does inside its forward. "NHWC" rows use channels-last activations (zoo's default in
training and evaluation); "compiled" is what `zoo-eval compile=true` runs (torch.compile with frozen
weights, NHWC). The reduced-precision rows run zoo under bf16 autocast.
"""
from __future__ import annotations

import argparse
import copy
import time
from functools import partial

import torch
from omegaconf import OmegaConf
from torchvision.models.detection import ssd300_vgg16
from torchvision.ops import box_iou

from zoo.config.paths import CONF_DIR
from zoo.config import model_node
from zoo.engine.precision import compile_for_inference
from bench_timing import medians, time_alternating
from zoo.utils.provenance import machine
from zoo.models.imports.torchvision import SSD_KEYS
from zoo.models.detectors import build_detector
from zoo.components import load_components

TORCHVISION_PRIORS = {"type": "ssd_priors", "aspect_ratios": [[2], [2, 3], [2, 3], [2, 3], [2], [2]],
                      "scales": [0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05], "steps": [8, 16, 32, 64, 100, 300],
                      "clip": "size"}
TV_MEAN, TV_STD = [0.48235, 0.45882, 0.40784], [1 / 255.0] * 3


def build_pair(num_classes: int, background_bias: float):
    torch.manual_seed(0)
    tv = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=num_classes).eval()
    with torch.no_grad():
        # Random VGG features are large, so random class logits saturate the softmax (scores tie at
        # 1.0 and the order of ties is arbitrary). Shrink them, and, as in a trained detector, make
        # most boxes background.
        for conv in tv.head.classification_head.module_list:
            conv.weight.mul_(1e-3)
            conv.bias.view(-1, num_classes)[:, 0] += background_bias
    load_components()
    node = model_node(OmegaConf.load(f"{CONF_DIR}/model/ssd300.yaml"))
    node["priors"] = TORCHVISION_PRIORS
    zoo = build_detector(node, num_classes=num_classes - 1).eval()
    zoo.load_state_dict(SSD_KEYS.rename(tv.state_dict(), "torchvision ssd300_vgg16"))
    return tv, zoo


def zoo_runner(model, precision: str, channels_last: bool = False):
    mean = torch.tensor(TV_MEAN).view(3, 1, 1)
    std = torch.tensor(TV_STD).view(3, 1, 1)
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def run(image: torch.Tensor):
        x = ((image - mean) / std)[None].contiguous(memory_format=fmt)
        if precision == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return model(x)
        return model(x)

    return run


def compare(tv_out: dict, zoo_out: dict) -> str:
    """Match detections as sets (the order of near-equal scores may differ): each torchvision
    detection must have a zoo detection of the same class with the same box and score."""
    tv_labels = tv_out["labels"] - 1  # torchvision counts background as class 0
    dist = torch.cdist(tv_out["boxes"], zoo_out["boxes"].float(), p=1)
    dist[tv_labels[:, None] != zoo_out["labels"][None, :]] = float("inf")
    best, idx = dist.min(dim=1) if len(zoo_out["boxes"]) else (torch.full((len(tv_labels),), float("inf")), None)
    matched = best < 1e-2
    score_diff = (f"{(tv_out['scores'][matched] - zoo_out['scores'].float()[idx[matched]]).abs().max().item():.1e}"
                  if matched.any() else "-")
    # Reduced precision moves boxes and reorders near-equal scores: count near matches too.
    iou = box_iou(tv_out["boxes"], zoo_out["boxes"].float())
    iou[tv_labels[:, None] != zoo_out["labels"][None, :]] = 0
    # (IoU is undefined for the zero-area boxes clipping can leave, so exact matches count as near too.)
    near = int(((iou.max(dim=1).values >= 0.9) | matched).sum()) if len(zoo_out["boxes"]) else 0
    return (f"{int(matched.sum())}/{len(tv_labels)} torchvision detections found in zoo's {len(zoo_out['boxes'])} "
            f"(same class, box within 0.01 px; {near} at IoU >= 0.9), max |score diff| {score_diff}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--classes", type=int, default=21, help="torchvision's count, background included")
    parser.add_argument("--background-bias", type=float, default=4.0,
                        help="added to the background logit so that, as in a trained model, few boxes pass the "
                             "0.01 score threshold; 0 times the worst case (every box of every class kept)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tv, zoo = build_pair(args.classes, args.background_bias)
    image = torch.rand(3, 300, 300, generator=torch.Generator().manual_seed(1))
    zoo_nhwc = copy.deepcopy(zoo).to(memory_format=torch.channels_last)
    zoo_compiled = compile_for_inference(copy.deepcopy(zoo_nhwc))  # as `zoo-eval compile=true`
    runners = {"torchvision fp32": lambda img: tv([img]), "zoo fp32": zoo_runner(zoo, "fp32"),
               "zoo fp32 NHWC": zoo_runner(zoo_nhwc, "fp32", channels_last=True),
               "zoo fp32 compiled": zoo_runner(zoo_compiled, "fp32", channels_last=True),
               "zoo bf16": zoo_runner(zoo, "bf16"), "zoo bf16 NHWC": zoo_runner(zoo_nhwc, "bf16", channels_last=True)}
    with torch.inference_mode():
        reference = runners["torchvision fp32"](image)[0]
        print(f"outputs, zoo fp32 vs torchvision: {compare(reference, runners['zoo fp32'](image)[0])}")
        start = time.perf_counter()
        runners["zoo fp32 compiled"](image)
        print(f"zoo fp32 compiled: first call (compiling) {time.perf_counter() - start:.1f} s")
        for name in ("zoo fp32 NHWC", "zoo fp32 compiled", "zoo bf16", "zoo bf16 NHWC"):
            print(f"outputs, {name} vs torchvision: {compare(reference, runners[name](image)[0])}")
        times = time_alternating({name: partial(run, image) for name, run in runners.items()}, args.rounds)
    print(f"\n{machine(args.threads)}, batch 1, 300x300, {args.classes} classes, background bias "
          f"{args.background_bias}, {args.rounds} alternating rounds")
    meds = medians(times)
    print(f"{'model':<18} {'median ms':>10} {'speed-up vs torchvision fp32':>30}")
    for name, med in meds.items():
        print(f"{name:<18} {med:>10.1f} {meds['torchvision fp32'] / med:>29.2f}x")


if __name__ == "__main__":
    main()
