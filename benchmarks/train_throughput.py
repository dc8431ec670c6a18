"""Training throughput of config variants side by side: images per second of the trainer's real loop.

Usage: python benchmarks/train_throughput.py [--steps 100] [--rounds 3] VARIANT [VARIANT ...]
where each VARIANT is a quoted, space-separated list of zoo-train overrides ('' for the defaults), e.g.
    python benchmarks/train_throughput.py 'data.train.max_objects=24' 'data.train.max_objects=48'

Each variant gets its own Trainer (its loader workers included, so the cost of making the samples
competes for the cores as in a run). Rounds alternate between the variants, so a noisy machine slows
them alike; each round times ``--steps`` steps of loading + forward + loss + backward + optimizer.
Printed: each variant's images/s per round, the median, and each variant's median time per image relative to the
first variant's.
"""
from __future__ import annotations

import argparse
import shlex
import statistics
import tempfile

import torch
from hydra import compose, initialize_config_dir

from zoo.config.paths import CONF_DIR
from bench_timing import time_alternating
from zoo.utils.provenance import machine
from zoo.engine.trainer import Trainer
from zoo.components import load_components


class Variant:
    """One config's trainer and an endless stream of its training batches."""

    def __init__(self, overrides: list[str], run_dir: str):
        with initialize_config_dir(CONF_DIR, version_base="1.3"):
            cfg = compose("train", overrides=[*overrides, "trainer.progress=false"])
        self.trainer = Trainer(cfg, run_dir)
        self.batch_size = int(cfg.trainer.batch_size)
        self._epoch = 0
        self._batches = self._stream()

    def _stream(self):
        while True:  # a new epoch when the sampler runs out, as the trainer does
            self.trainer.train_sampler.set_epoch(self._epoch)
            yield from self.trainer.train_loader
            self._epoch += 1

    def train(self, steps: int) -> None:
        for _ in range(steps):
            self.trainer.run_step(next(self._batches))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="training steps per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps per variant first")
    parser.add_argument("variants", nargs="+", help="quoted override lists, one per variant")
    args = parser.parse_args()
    load_components()
    print(machine(torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as tmp:
        variants = {text or "(defaults)": Variant(shlex.split(text), f"{tmp}/run{i}")
                    for i, text in enumerate(args.variants)}
        for variant in variants.values():
            variant.train(args.warmup)  # workers started, kernels chosen
        times = time_alternating({name: lambda v=variant: v.train(args.steps)
                                  for name, variant in variants.items()}, args.rounds, warmup=0)
        rates = {name: [args.steps * variants[name].batch_size / (ms / 1000) for ms in values]
                 for name, values in times.items()}
    for name, values in rates.items():
        print(f"{name}: rounds " + ", ".join(f"{rate:.1f}" for rate in values) + " images/s")
    first = statistics.median(next(iter(rates.values())))
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"{name}: median {median:.1f} images/s, {first / median:.3f}x the first variant's time per image")


if __name__ == "__main__":
    main()
