"""torchvision's detectors imported with zoo-import, against torchvision itself on BCCD test images: same weights
(randomly initialised, a seed per model), each JPEG read by each library's own pipeline, detections compared per image.

Usage: python benchmarks/import_torchvision.py [--images 20] [--threads 2]

Random weights make the check as hard as it gets: activations are large and scores near-tied, so rounding moves
them more than trained weights would. The class logits are spread (Faster R-CNN x4; SSD x0.1 with a background
bias of 6) so that the 0.05 and 0.01 thresholds keep detections, and the ten unused COCO ids get a -30 bias, as a
trained model never scores them (zoo leaves them out). Per model: detections on each side, how many images agree to
the tolerances (scores 1e-3; boxes 1e-3 px plus 1e-4 of the image's scale: zoo.apis.export.same_detections), the
largest score difference between paired detections, and the median time per image of each, side by side.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torchvision.io import read_image
from torchvision.models.detection import fasterrcnn_resnet50_fpn, ssd300_vgg16

from zoo.apis.export import same_detections
from zoo.apis.import_model import import_checkpoint
from zoo.apis.predict import Predictor
from zoo.components import load_components
from zoo.config.paths import PROJECT
from zoo.models.imports.classes import TORCHVISION_COCO, TORCHVISION_COCO_ROWS
from zoo.utils.provenance import machine

BCCD = (PROJECT / "../shared/datasets/bccd").resolve()
UNUSED = [i for i, name in enumerate(TORCHVISION_COCO) if name == "N/A"]


def reference(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "fasterrcnn_resnet50_fpn":
        model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91).eval()
        logits = [model.roi_heads.box_predictor.cls_score]
        scale, background = 4.0, 0.0
    else:
        model = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=91).eval()
        logits = list(model.head.classification_head.module_list)
        scale, background = 0.1, 6.0
    with torch.no_grad():
        for layer in logits:
            layer.weight.mul_(scale)
            bias = layer.bias.view(-1, 91)
            bias[:, 0] += background
            bias[:, UNUSED] = -30.0
    return model


def zoo_labels(found: dict) -> dict:
    rows = torch.tensor(TORCHVISION_COCO_ROWS)
    return {"boxes": found["boxes"], "scores": found["scores"], "labels": torch.searchsorted(rows, found["labels"]) - 1}


def largest_score_gap(a: dict, b: dict) -> float:
    if not len(a["scores"]) or len(a["scores"]) != len(b["scores"]):
        return float("nan")
    return float((a["scores"].sort().values - b["scores"].sort().values).abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_components()
    ids = (BCCD / "ImageSets" / "Main" / "test.txt").read_text().split()[: args.images]
    files = [str(BCCD / "JPEGImages" / f"{i}.jpg") for i in ids]
    print(f"{machine(args.threads)}; {len(files)} BCCD test images, batch 1, float32")
    print(f"{'model':<26} {'detections tv / zoo':>20} {'images agreeing':>16} {'max score gap':>14} "
          f"{'ms/image tv':>12} {'ms/image zoo':>13} {'import s':>9}")
    with tempfile.TemporaryDirectory() as folder:
        for name in ("ssd300_vgg16", "fasterrcnn_resnet50_fpn"):
            model = reference(name)
            torch.save(model.state_dict(), Path(folder) / f"{name}.pth")
            info = import_checkpoint("torchvision", name, Path(folder) / f"{name}.pth", Path(folder) / f"{name}.pt")
            predictor = Predictor(info["file"], device="cpu", batch_size=1)
            counts, agreeing, gaps, tv_ms, zoo_ms = [0, 0], 0, [], [], []
            for file in files:
                image = read_image(file).float() / 255
                start = time.perf_counter()
                with torch.no_grad():
                    theirs = zoo_labels(model([image])[0])
                tv_ms.append((time.perf_counter() - start) * 1000)
                start = time.perf_counter()
                found = predictor([file])[0]
                zoo_ms.append((time.perf_counter() - start) * 1000)
                ours = {k: torch.as_tensor(found[k]) for k in ("boxes", "scores", "labels")}
                counts[0] += len(theirs["scores"])
                counts[1] += len(ours["scores"])
                agreeing += same_detections([theirs], [ours], atol=1e-3, box_rtol=1e-4) is None
                gaps.append(largest_score_gap(theirs, ours))
            gap = max((g for g in gaps if g == g), default=float("nan"))
            print(f"{name:<26} {f'{counts[0]} / {counts[1]}':>20} {f'{agreeing}/{len(files)}':>16} {gap:>14.2e} "
                  f"{statistics.median(tv_ms):>12.0f} {statistics.median(zoo_ms):>13.0f} {info['seconds']:>9.1f}")


if __name__ == "__main__":
    main()
