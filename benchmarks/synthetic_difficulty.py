"""How much of a synthetic-data checkpoint's missing mAP the ambiguous objects account for.

Usage: python benchmarks/synthetic_difficulty.py RUN/checkpoints/last.pt [--visible 0.5 0.6 0.7 0.8]
           [--size 12 16 24 32] [--split val|train] [--json OUT.json]

Scores the checkpoint on its val split as labelled (every object counts), then with the partly hidden
objects (less than v of their pixels visible) and, separately, the small ones (longer box side below
s px) marked ignore — VOC's 'difficult' treatment: a detection on them is neither right nor wrong and
missing them costs nothing. Each row prints the share of objects it sets aside. If the mAP rises far
above the share set aside, those objects, not the rest, are where the detector fails.

``--split train`` scores as many of the training images (the val split's count, with the test
transform) instead: if the same objects fail there too, the detector has not fitted them yet (too few
updates or too little capacity), rather than fitted them and failed to generalise.
"""
from __future__ import annotations

import argparse
import json

from zoo.engine.distributed import local_device
from zoo.apis.run import TrainedRun
from zoo.engine.inference import evaluate_model
from zoo.evaluation import build_evaluators
from zoo.components import load_components


def score(checkpoint: str, device: str, rule: dict, split: str = "val") -> tuple[float, float, str]:
    """(primary metric, share of objects ignored, metric name) on the val split's images, or as many
    of the train split's with ``split='train'``, with ``rule`` set on the split."""
    images = {"split": split} if split != "val" else {}  # a synthetic split is named by its seed stream
    trained = TrainedRun(checkpoint, device, data_overrides={"val": {**rule, **images}})
    model, loader, run_cfg = trained.model, trained.loader("val", 16), trained.run.cfg
    if run_cfg.data.val.get("type") != "synthetic":
        raise SystemExit(f"{checkpoint}: trained on '{run_cfg.data.name}'; this benchmark needs the synthetic data")
    evaluators = build_evaluators(list(run_cfg.evaluator.values()), list(loader.dataset.class_names))
    results = evaluate_model(model, loader, evaluators, local_device(device), progress=False,
                             channels_last=trained.run.channels_last)
    anns = [loader.dataset.get_annotation(i) for i in range(len(loader.dataset))]
    total = sum(len(a["ignore"]) for a in anns)
    ignored = sum(int(a["ignore"].sum()) for a in anns)
    name = evaluators[0].primary_metric
    return results["metrics"][name], ignored / max(total, 1), name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--visible", type=float, nargs="*", default=[0.5, 0.6, 0.7, 0.8])
    parser.add_argument("--size", type=float, nargs="*", default=[12, 16, 24, 32])
    parser.add_argument("--split", default="val", choices=["val", "train"],
                        help="train: the training images (as many as val has), to tell unfitted from unlearnt")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args()
    load_components()
    rules = [("every object counts", {})]
    rules += [(f"visible < {v:g} ignored", {"ignore_below_visible": v}) for v in args.visible]
    rules += [(f"longer side < {s:g} px ignored", {"ignore_below_size": s}) for s in args.size]
    rows = []
    for label, rule in rules:
        value, share, name = score(args.checkpoint, args.device, rule, args.split)
        rows.append({"rule": label, **rule, "ignored_share": round(share, 4), name: round(value, 4)})
        print(f"{label:34s} objects ignored {100 * share:5.1f}%   {name} {value:.4f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"checkpoint": args.checkpoint, "split": args.split, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
