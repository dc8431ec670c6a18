"""CornerNet inference: decoding + soft-NMS time against the network's forward pass, on the CPU.

Usage: python benchmarks/cornernet_decode.py [--model cornernet_hg104] [--batch 8] [--classes 80]
           [--rounds 5] [--threads 2]

The forward pass is the model's network alone (backbone and head, random weights) on a batch at its
config's input size (cornernet_hg104: 511 px -> 128 x 128 maps). Decoding is timed on the head's maps in
two cases: ``random`` (random heatmaps and embeddings: classes and embeddings reject most pairs) and
``all pairs valid`` (one class, equal embeddings: every geometrically valid pair of the 100 x 100 reaches
soft-NMS, the worst case). Rounds alternate; medians are printed with decoding as a share of the forward.
"""
from __future__ import annotations

import argparse

import torch
from hydra import compose, initialize_config_dir

from zoo.config.paths import CONF_DIR
from zoo.config import model_node
from bench_timing import medians, time_alternating
from zoo.utils.provenance import machine
from zoo.models.detectors import build_detector
from zoo.components import load_components


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="cornernet_hg104")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_components()
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"model={args.model}"])
    torch.manual_seed(0)
    model = build_detector(model_node(cfg.model), args.classes).eval()
    size = int(cfg.model.input_size)
    images = torch.randn(args.batch, 3, size, size)

    def network():
        return model.head(model.neck(model.backbone(images)))[-1]

    with torch.inference_mode():
        out = network()
        h, w = out["heat"].shape[-2:]
        worst = {"heat": out["heat"][:, :, :1], "embed": torch.zeros_like(out["embed"]), "offset": out["offset"]}
        runs = {"forward": network,
                "decode random": lambda: model._detect(out, [(size, size)] * args.batch),
                "decode all pairs valid": lambda: model._detect(worst, [(size, size)] * args.batch)}
        times = medians(time_alternating(runs, args.rounds, warmup=1))
        kept = [len(d["boxes"]) for d in model._detect(worst, [(size, size)] * args.batch)]
    print(machine(args.threads))
    print(f"{args.model}: batch {args.batch}, input {size}, maps {h}x{w}, {args.classes} classes, "
          f"k {model.test_cfg['k']}, soft-NMS {model.test_cfg['nms']}, {args.rounds} rounds (medians)")
    for name, ms in times.items():
        share = "" if name == "forward" else f"  ({100 * ms / times['forward']:.2f}% of the forward)"
        print(f"  {name:24s} {ms:10.1f} ms{share}")
    print(f"  detections per image, all pairs valid: {min(kept)}..{max(kept)}")


if __name__ == "__main__":
    main()
