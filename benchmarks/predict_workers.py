"""zoo-predict with a detector of given proposals: seconds for a list of pictures with selective search in one loader
process and in one per core, rounds alternating, and whether both give the same detections.

Usage: python benchmarks/predict_workers.py CHECKPOINT IMAGE [IMAGE ...] [--batch-size 1] [--rounds 2]

CHECKPOINT: a run of fast_rcnn_lite, spp_lite or rcnn_lite (model.proposals: selective_search). The Predictor is
zoo-predict's; its loader takes min(cores, batches) processes (a process makes a whole batch), so the comparison
patches the core count to 1 and to this machine's.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import zoo.apis.predict as predict
from zoo.components import load_components
from zoo.data.selective_search import default_workers
from zoo.utils.provenance import machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("images", nargs="+")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    load_components()
    cores = default_workers()
    print(machine(torch.get_num_threads()))
    predictor = predict.Predictor(args.checkpoint, device="cpu", batch_size=args.batch_size)
    found, seconds = {}, {1: [], cores: []}
    for _ in range(args.rounds):
        for count in seconds:
            predict.default_workers = lambda count=count: count
            started = time.perf_counter()
            found[count] = predictor(args.images)
            seconds[count].append(time.perf_counter() - started)
    same = all(np.array_equal(a["boxes"], b["boxes"]) and np.array_equal(a["scores"], b["scores"])
               for a, b in zip(found[1], found[cores]))
    for count, values in seconds.items():
        print(f"{len(args.images)} pictures, batch {args.batch_size}, up to {count} loader process(es): "
              + ", ".join(f"{v:.1f}" for v in values) + " s")
    print(f"the same detections either way: {same}")


if __name__ == "__main__":
    main()
