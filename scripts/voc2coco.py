"""Convert a VOC split to COCO JSON.

    python scripts/voc2coco.py --root ../shared/datasets/bccd --split test \
        --classes RBC WBC Platelets --out bccd_test.json

Difficult objects become iscrowd=1 (see zoo/data/voc2coco.py).
"""
from __future__ import annotations

import argparse

from zoo.data.voc2coco import voc_to_coco, write_coco


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="VOC folder holding Annotations/, ImageSets/, JPEGImages/")
    parser.add_argument("--split", required=True, help="name of ImageSets/Main/<split>.txt")
    parser.add_argument("--classes", required=True, nargs="+", help="class names, in label order")
    parser.add_argument("--out", required=True, help="COCO JSON file to write")
    args = parser.parse_args(argv)
    data = voc_to_coco(args.root, args.split, args.classes)
    write_coco(data, args.out)
    print(f"wrote {len(data['images'])} images, {len(data['annotations'])} boxes to {args.out}")


if __name__ == "__main__":
    main()
