"""fpn_r50 vs torchvision's fasterrcnn_resnet50_fpn: inference latency and training-step time,
same weights, side by side in one process.

Usage: python benchmarks/two_stage_speed.py [--size 512] [--rounds 5] [--threads 2] [--batch 2]

Both models are randomly initialised with torchvision's model, and its weights are copied into
zoo's fpn_r50 (built with plain BatchNorm, torchvision's choice when no weights are given), so both
see the same logits. The two differ in anchor centres (torchvision puts them on cell corners and
rounds their sizes; zoo centres them), so their detections are close, not identical: the script
prints both counts. "NHWC" rows run zoo in its default channels-last layout (the trainer's and
zoo-eval's), "compiled" as `zoo-eval compile=true`. torchvision's time includes its own normalisation
and resize inside forward (a no-op resize at --size); zoo's time includes the normalisation its data
pipeline does. Rounds alternate between the models after one untimed warm-up round; medians are printed.
"""
from __future__ import annotations

import argparse
import copy
import time

import torch
from hydra import compose, initialize_config_dir
from torchvision.models.detection import fasterrcnn_resnet50_fpn

from zoo.config.paths import CONF_DIR
from zoo.config import model_node
from zoo.engine.precision import compile_for_inference
from bench_timing import medians, time_alternating
from zoo.utils.provenance import machine
from zoo.models.detectors import build_detector
from zoo.components import load_components
from zoo.models.imports.torchvision import FASTER_RCNN_KEYS

MEAN, STD = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def build_pair(num_classes: int, size: int):
    torch.manual_seed(0)
    tv = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=num_classes + 1,
                                 min_size=size, max_size=size)
    load_components()
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        # torchvision pools with RoIAlign (2 samples per bin) where the FPN paper's config pools with RoIPool
        cfg = compose("train", overrides=["model=fpn_r50", "model.backbone.norm=bn", "model.backbone.frozen_stages=0",
                                          "model.roi_head.pooler.type=roi_align", "+model.roi_head.pooler.sampling_ratio=2"])
    zoo = build_detector(model_node(cfg.model), num_classes)
    zoo.load_state_dict(FASTER_RCNN_KEYS.rename(tv.state_dict(), "torchvision fasterrcnn_resnet50_fpn"))
    return tv, zoo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--batch", type=int, default=2, help="images per training step")
    parser.add_argument("--classes", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tv, zoo = build_pair(args.classes, args.size)
    gen = torch.Generator().manual_seed(1)
    image = torch.rand(3, args.size, args.size, generator=gen)
    boxes = torch.tensor([[40.0, 60.0, 200.0, 220.0], [300.0, 100.0, 420.0, 300.0], [100.0, 350.0, 180.0, 430.0]])
    labels = torch.tensor([3, 7, 11])
    train_images = [torch.rand(3, args.size, args.size, generator=gen) for _ in range(args.batch)]
    tv_targets = [{"boxes": boxes, "labels": labels + 1} for _ in train_images]  # torchvision: 0 is background
    zoo_targets = [{"boxes": boxes, "labels": labels} for _ in train_images]
    nhwc = copy.deepcopy(zoo).to(memory_format=torch.channels_last)  # zoo's default layout (trainer, zoo-eval)
    tv_opt = torch.optim.SGD(tv.parameters(), lr=1e-4, momentum=0.9)
    zoo_opt = torch.optim.SGD(zoo.parameters(), lr=1e-4, momentum=0.9)
    nhwc_opt = torch.optim.SGD(nhwc.parameters(), lr=1e-4, momentum=0.9)

    def tv_infer():
        return tv([image])[0]

    def zoo_infer(model=zoo, fmt=torch.contiguous_format):
        return model(((image - MEAN) / STD)[None].contiguous(memory_format=fmt))[0]

    def tv_train():
        loss = sum(tv(train_images, tv_targets).values())
        tv_opt.zero_grad()
        loss.backward()
        tv_opt.step()

    def zoo_train(model=zoo, opt=zoo_opt, fmt=torch.contiguous_format):
        images = torch.stack([(im - MEAN) / STD for im in train_images]).contiguous(memory_format=fmt)
        loss = sum(model(images, zoo_targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()

    for model in (tv, zoo, nhwc):
        model.eval()
    compiled = compile_for_inference(copy.deepcopy(nhwc))  # as `zoo-eval compile=true`
    cl = torch.channels_last
    with torch.inference_mode():
        tv_out, zoo_out = tv_infer(), zoo_infer()
        print(f"detections on one random image: torchvision {len(tv_out['boxes'])}, zoo {len(zoo_out['boxes'])}")
        start = time.perf_counter()
        zoo_infer(compiled, cl)
        print(f"zoo infer compiled: first call (compiling) {time.perf_counter() - start:.1f} s")
        times = time_alternating({"torchvision infer": tv_infer, "zoo infer": zoo_infer,
                                  "zoo infer NHWC": lambda: zoo_infer(nhwc, cl),
                                  "zoo infer compiled": lambda: zoo_infer(compiled, cl)}, args.rounds, warmup=1)
    for model in (tv, zoo, nhwc):
        model.train()
    times.update(time_alternating({"torchvision train step": tv_train, "zoo train step": zoo_train,
                                   "zoo train step NHWC": lambda: zoo_train(nhwc, nhwc_opt, cl)},
                                  args.rounds, warmup=1))
    print(f"{machine(args.threads)}, {args.size}x{args.size}, {args.classes} classes, inference batch 1, training batch {args.batch}, "
          f"{args.rounds} alternating rounds after one warm-up")
    print(f"{'what':<24} {'median ms':>10} {'ratio zoo / torchvision':>25}")
    meds = medians(times)
    for name, med in meds.items():
        pair = ("torchvision infer" if "infer" in name else "torchvision train step") if name.startswith("zoo") else None
        ratio = f"{med / meds[pair]:.2f}x" if pair else ""
        print(f"{name:<24} {med:>10.1f} {ratio:>25}")


if __name__ == "__main__":
    main()
