"""RPN average recall of two-stage checkpoints side by side (FPN Table 1's metrics: AR@100, AR@1k, AR_s/m/l@1k).

Usage: python benchmarks/rpn_recall.py RUN/checkpoints/last.pt [MORE.pt ...] [--split test]
           [--limits 100 1000] [--data-root PATH] [--batch-size 8] [--device auto]

Each checkpoint is rebuilt from the config stored inside it; its RPN keeps max(limits) proposals
per image (post-NMS) and ground truths marked ignore (VOC difficult, COCO crowd) are left out.
"""
from __future__ import annotations

import argparse

from zoo.apis.evaluate import proposal_recall
from zoo.components import load_components


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limits", nargs="+", type=int, default=[100, 1000])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    load_components()
    rows = [proposal_recall(c, args.split, args.limits, args.batch_size, args.device, args.data_root)
            for c in args.checkpoints]
    keys = list(rows[0][1])
    print(f"{'model':<20} " + " ".join(f"{k:>20}" for k in keys) + "   checkpoint")
    for (name, values), checkpoint in zip(rows, args.checkpoints):
        print(f"{name:<20} " + " ".join(f"{values[k]:>20.4f}" for k in keys) + f"   {checkpoint}")


if __name__ == "__main__":
    main()
