"""Parameters and forward FLOPs of zoo models, backbone and whole detector, at one input size.

Usage: python benchmarks/model_cost.py [--models ssd_lite refinedet_lite ...] [--size 320]
           [--num-classes 3] [--train]

FLOPs are counted by torch.utils.flop_counter (matrix multiplies and convolutions, 2 per
multiply-add) for one random --size x --size image through a randomly initialised model; the
whole-detector figure is the eval forward (post-processing has no FLOP-counted ops), or with --train
the training forward on one ground-truth box (losses and target building are not counted either way).
A two-stage detector's RoI head costs in proportion to the proposals it keeps (up to its test
post-NMS top-N; random weights keep nearly all of them, a trained RPN on an image with few objects
may keep fewer).
"""
from __future__ import annotations

import argparse

import torch
from hydra import compose, initialize_config_dir
from torch.utils.flop_counter import FlopCounterMode

from zoo.config.paths import CONF_DIR
from zoo.config import model_node
from zoo.models.detectors import build_detector
from zoo.components import load_components

LITE_MODELS = ["ssd_lite", "refinedet_lite", "faster_rcnn_lite", "fpn_lite", "cornernet_lite"]


def count_flops(fn, *args) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        fn(*args)
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=LITE_MODELS)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--num-classes", type=int, default=3)
    parser.add_argument("--train", action="store_true", help="count the training forward instead")
    args = parser.parse_args()
    load_components()
    image = torch.randn(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    target = [{"boxes": torch.tensor([[40.0, 40.0, 120.0, 140.0]]), "labels": torch.tensor([0]),
               "ignore": torch.tensor([False])}]
    print(f"{'model':<20}{'params (M)':>12}{'backbone GFLOPs':>18}{'detector GFLOPs':>18}   "
          f"({args.size} x {args.size}, {'train' if args.train else 'eval'} forward)")
    for name in args.models:
        with initialize_config_dir(CONF_DIR, version_base="1.3"):
            cfg = compose("train", overrides=[f"model={name}"])
        torch.manual_seed(0)
        model = build_detector(model_node(cfg.model), args.num_classes).train(args.train)
        with torch.no_grad():
            backbone = count_flops(model.backbone, image)
            detector = count_flops(model, image, *([target] if args.train else []))
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(f"{name:<20}{params:>12.2f}{backbone / 1e9:>18.2f}{detector / 1e9:>18.2f}")


if __name__ == "__main__":
    main()
