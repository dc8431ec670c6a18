"""Fixtures of the data tests: tiny VOC trees with generated JPEGs written into tmp_path, and the BCCD root."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

BCCD = Path(os.environ.get("ZOO_BCCD", Path(__file__).resolve().parents[3] / "shared" / "datasets" / "bccd"))


def voc_xml(size: tuple[int, int], objects: list[tuple]) -> str:
    """objects: (name, (xmin, ymin, xmax, ymax)[, difficult]) in VOC's 1-based pixels."""
    parts = [f"<annotation><size><width>{size[1]}</width><height>{size[0]}</height><depth>3</depth></size>"]
    for name, box, *difficult in objects:
        bndbox = "".join(f"<{k}>{v}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box))
        parts.append(f"<object><name>{name}</name><difficult>{int(bool(difficult and difficult[0]))}</difficult>"
                     f"<bndbox>{bndbox}</bndbox></object>")
    return "".join(parts) + "</annotation>"


def _write_voc(root: Path, images: dict[str, dict], split: str = "trainval") -> Path:
    """images: id -> dict(size=(h, w), objects=[...], image='ok'|'missing'|'corrupt', xml=<raw text>)."""
    for folder in ("Annotations", "ImageSets/Main", "JPEGImages"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for image_id, spec in images.items():
        h, w = spec.get("size", (48, 64))
        xml = spec.get("xml") or voc_xml((h, w), spec.get("objects", []))
        (root / "Annotations" / f"{image_id}.xml").write_text(xml)
        kind = spec.get("image", "ok")
        path = root / "JPEGImages" / f"{image_id}.jpg"
        if kind == "ok":
            cv2.imwrite(str(path), rng.integers(0, 256, (*spec.get("image_size", (h, w)), 3), dtype=np.uint8))
        elif kind == "corrupt":
            path.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in images))
    return root


@pytest.fixture
def write_voc():
    """``write_voc(root, {id: spec}, split)`` -> root; see _write_voc for the spec keys."""
    return _write_voc


@pytest.fixture
def voc_classes() -> list[str]:
    return ["cat", "dog", "bird"]


@pytest.fixture
def bccd_root() -> Path:
    if not BCCD.is_dir():
        pytest.skip(f"BCCD not found at {BCCD}")
    return BCCD


@pytest.fixture
def small_voc(tmp_path: Path) -> Path:
    """Three good images: two objects (one difficult), one object, and a negative."""
    return _write_voc(tmp_path / "voc", {
        "a": dict(objects=[("cat", (11, 6, 30, 25)), ("dog", (21, 11, 60, 40), True)]),
        "b": dict(objects=[("bird", (1, 1, 10, 12))]),
        "c": dict(objects=[]),
    })
