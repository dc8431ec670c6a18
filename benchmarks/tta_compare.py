"""Single-scale vs test-time-augmented accuracy of one checkpoint, and what each costs, in one process.

Usage: python benchmarks/tta_compare.py RUN/checkpoints/last.pt [--tta none flip multiscale]
           [--split test] [--data-root PATH] [--batch-size 16] [--device auto] [--json OUT.json]

A row is a tta config name, optionally followed by comma-separated overrides of it:
`flip,tta.merge.type=nms` is the flip views merged by NMS. A view the model refuses (SSD's fixed
extra layers below their smallest input) is reported as refused and the other rows still run.

Each row is exactly `zoo-eval checkpoint=... tta=<name>` (the same config composition), scored by the
run's own evaluators (the figure is the first evaluator's primary metric). The time is the evaluation
loop alone (loading the images, the forward passes with their augmentation and merging, scoring),
without loading the checkpoint; one untimed pass of the first row warms the machine up first
(--no-warmup skips it), so the rows' ratios compare the augmentations and nothing else.
"""
from __future__ import annotations

import argparse
import json

from hydra import compose, initialize_config_dir

from zoo.config.paths import CONF_DIR
from zoo.apis.evaluate import evaluate_checkpoint
from zoo.models.layers import InputTooSmallError
from zoo.components import load_components


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--tta", nargs="+", default=["none", "flip", "multiscale"])
    parser.add_argument("--split", default="test")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", default=None, help="also write the rows here")
    parser.add_argument("--no-warmup", dest="warmup", action="store_false")
    args = parser.parse_args()
    load_components()
    rows = []
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        configs = []
        for spec in args.tta:
            name, *extra = spec.split(",")
            overrides = [f"checkpoint={args.checkpoint}", f"split={args.split}", f"batch_size={args.batch_size}",
                         f"device={args.device}", "plots=false"]
            overrides += [f"data_root={args.data_root}"] if args.data_root else []
            overrides += [f"tta={name}", *extra] if name != "none" else []
            configs.append(compose("eval", overrides=overrides))
    if args.warmup:
        evaluate_checkpoint(configs[0])
    for name, cfg in zip(args.tta, configs):
        try:
            results = evaluate_checkpoint(cfg)
        except InputTooSmallError as error:
            print(f"tta={name:<14} refused: {error}", flush=True)
            rows.append({"tta": name, "refused": str(error)})
            continue
        metric = next(iter(results["per_class"]))  # keyed by each evaluator's primary metric, in order
        value, seconds = results["metrics"][metric], results["eval_seconds"]
        rows.append({"tta": name, "metric": metric, "value": value, "seconds": seconds,
                     "per_class": results["per_class"][metric], "model": results["model"]})
        print(f"tta={name:<14} {metric}={value:.4f}  {seconds:7.1f} s", flush=True)
    scored = [row for row in rows if "refused" not in row]
    if not scored:
        raise SystemExit("every row was refused")
    first = scored[0]
    width = max(16, *(len(row["tta"]) + 2 for row in rows))
    print(f"\n{first['model']} on {args.split} ({args.checkpoint})")
    print(f"{'tta':<{width}}{first['metric']:>14}{'seconds':>10}{'x ' + first['tta']:>{max(10, len(first['tta']) + 4)}}")
    for row in rows:
        if "refused" in row:
            print(f"{row['tta']:<{width}}  refused (the model's smallest input)")
            continue
        ratio = row["seconds"] / first["seconds"]
        print(f"{row['tta']:<{width}}{row['value']:>14.4f}{row['seconds']:>10.1f}{ratio:>{max(10, len(first['tta']) + 4)}.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"checkpoint": args.checkpoint, "split": args.split, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
