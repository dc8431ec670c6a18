"""Batch-1 inference latency of zoo models side by side, each at its config's input size.

Usage: python benchmarks/detector_latency.py [--models ssd300 refinedet320] [--rounds 10] [--threads 2]
           [--precision fp32 bf16] [--channels-last] [--background-bias 4] [--arm-background-bias 0]
           [--test topk_per_class=400 max_detections=200]

Models are randomly initialised (offline machines have no trained weights). Random class logits
would let thousands of boxes through the 0.01 score threshold and make the timing mostly NMS, so,
as in a trained detector, ``--background-bias`` is added to every background logit of the final
classifier (SSD's head, RefineDet's ODM). RefineDet's ARM is left unbiased: its negative anchor
filtering then removes nothing, which is RefineDet's worst case (``--arm-background-bias 5.3``
filters every anchor: its best case). How many boxes reach NMS depends on the bias: at 4 nearly
every anchor passes the 0.01 threshold and NMS cost follows ``topk_per_class`` (RefineDet's 1000
against SSD's 400); at 6 almost none do and the networks alone are compared. ``--test k=v``
sets the same test settings on every model. Rounds alternate between the models (fair on a noisy
machine); the medians and the ratios to the first model are printed.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch
from hydra import compose, initialize_config_dir

from zoo.config.paths import CONF_DIR
from zoo.config import model_node
from bench_timing import medians, time_alternating
from zoo.utils.provenance import machine
from zoo.models.detectors import build_detector
from zoo.components import load_components


def build(name: str, num_classes: int, background_bias: float, arm_background_bias: float = 0.0,
          channels_last: bool = False, test: Sequence[str] = ()):
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"model={name}", *[f"model.test.{kv}" for kv in test]])
    torch.manual_seed(0)
    model = build_detector(model_node(cfg.model), num_classes).eval()
    biases = [(model.odm if hasattr(model, "odm") else model.head, num_classes + 1, background_bias)]
    if getattr(model, "arm", None) is not None:
        biases.append((model.arm, 2, arm_background_bias))
    with torch.no_grad():
        for head, width, bias in biases:
            for conv in head.cls:
                conv.bias.view(-1, width)[:, 0] += bias
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, int(cfg.model.input_size)


def runner(model, size: int, precision: str, channels_last: bool):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    image = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1)).contiguous(memory_format=fmt)

    def run():
        if precision == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return model(image)
        return model(image)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["ssd300", "refinedet320"])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--classes", type=int, default=20, help="object classes (VOC: 20)")
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--background-bias", type=float, default=4.0)
    parser.add_argument("--arm-background-bias", type=float, default=0.0)
    parser.add_argument("--test", nargs="*", default=[], help="test settings for every model, e.g. topk_per_class=400")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_components()
    runs, sizes = {}, {}
    for name in args.models:
        model, size = build(name, args.classes, args.background_bias, args.arm_background_bias, args.channels_last,
                            args.test)
        sizes[name] = size
        for precision in args.precision:
            runs[f"{name} {precision}"] = runner(model, size, precision, args.channels_last)
    with torch.inference_mode():
        times = time_alternating(runs, args.rounds)
    print(f"{machine(args.threads)}, "
          f"batch 1, {args.classes} classes, background bias {args.background_bias} (ARM "
          f"{args.arm_background_bias}), test settings {args.test or 'each config own'}, "
          f"{'NHWC' if args.channels_last else 'NCHW'}, {args.rounds} alternating rounds")
    meds = medians(times)
    first = next(iter(times))
    print(f"{'model':<24} {'input':>6} {'median ms':>10} {'min ms':>8} {f'ratio to {first}':>24}")
    for key, med in meds.items():
        print(f"{key:<24} {sizes[key.split()[0]]:>6} {med:>10.1f} {min(times[key]):>8.1f} {med / meds[first]:>23.2f}x")


if __name__ == "__main__":
    main()
