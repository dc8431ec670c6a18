"""Precomputed proposals, one file per split, in detectron2's layout for them: ``ids`` (image ids), ``boxes`` (per
image an (N, 4) array, xyxy in the image's own pixels, best first), ``objectness_logits`` (per image (N,), or None
where the method gives no scores) and ``bbox_mode`` ("XYXY_ABS"), with zoo's ``method`` and ``seconds_per_image``.
Written as a pickle of numpy arrays and builtins, read back with the arrays-only unpickler (zoo.utils.safe_pickle).

Bad files get the treatment bad annotations get: a file that is not one, an image of the split it does not cover, a
box that is not four finite numbers: an error naming the file and the image; boxes reaching past the image: clipped,
boxes left with no area and images left with no proposal: dropped or kept empty, counted in one warning."""
from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoo.data.errors import DataError, Tally
from zoo.utils.files import write_atomically
from zoo.utils.safe_pickle import load_arrays_pickle

BBOX_MODE = "XYXY_ABS"


def write_proposals(path: str | Path, ids: Sequence[int], boxes: Sequence[np.ndarray],
                    scores: Sequence[np.ndarray] | None = None, method: str = "",
                    seconds_per_image: Sequence[float] | None = None) -> None:
    """Write a proposals file (atomically). ``boxes``: per image (N, 4) xyxy in its own pixels, best first."""
    if len(ids) != len(boxes) or scores is not None and len(scores) != len(ids):
        raise ValueError("write_proposals: ids, boxes and scores need one entry per image")
    data: dict[str, Any] = {
        "ids": [int(i) for i in ids],
        "boxes": [np.asarray(b, np.float32).reshape(-1, 4) for b in boxes],
        "objectness_logits": None if scores is None else [np.asarray(s, np.float32).reshape(-1) for s in scores],
        "bbox_mode": BBOX_MODE, "method": method,
        "seconds_per_image": None if seconds_per_image is None else [float(s) for s in seconds_per_image],
    }
    write_atomically(Path(path), lambda tmp: Path(tmp).write_bytes(pickle.dumps(data, protocol=4)))


def read_proposals(path: str | Path) -> dict[str, Any]:
    """The file's content, its structure checked: every image id with an (N, 4) array of finite boxes (and (N,)
    scores where it has them)."""
    where = f"proposals file '{path}'"
    if not Path(path).is_file():
        raise FileNotFoundError(f"{where} not found")
    data = load_arrays_pickle(path, where)
    if not isinstance(data, Mapping) or not {"ids", "boxes"} <= set(data):
        raise DataError(f"{where}: not a proposals file (expected a dict with 'ids' and 'boxes', as zoo-proposals "
                        "writes)")
    if data.get("bbox_mode", BBOX_MODE) != BBOX_MODE:
        raise DataError(f"{where}: bbox_mode {data['bbox_mode']!r}; only {BBOX_MODE!r} (x1, y1, x2, y2 in pixels)")
    ids, boxes, scores = list(data["ids"]), list(data["boxes"]), data.get("objectness_logits")
    if len(ids) != len(boxes) or scores is not None and len(scores) != len(ids):
        raise DataError(f"{where}: {len(ids)} ids but {len(boxes)} box lists"
                        f"{'' if scores is None else f' and {len(scores)} score lists'}")
    for n, (image_id, b) in enumerate(zip(ids, boxes)):
        b = np.asarray(b)
        if b.ndim != 2 or b.shape[1] != 4 or not np.isfinite(b).all():
            raise DataError(f"{where}: image {image_id}: boxes must be finite (N, 4) x1, y1, x2, y2; got shape "
                            f"{b.shape}{'' if np.isfinite(b).all() else ' with non-finite values'}")
        if scores is not None and np.asarray(scores[n]).shape != (b.shape[0],):
            raise DataError(f"{where}: image {image_id}: {b.shape[0]} boxes but scores of shape "
                            f"{np.asarray(scores[n]).shape}")
    return dict(data)


def proposals_for(path: str | Path, image_sizes: Mapping[int, tuple[int, int]],
                  dataset: str = "proposals") -> dict[int, np.ndarray]:
    """Per image id of a split (``image_sizes``: id -> (height, width)), its proposals clipped to the image, boxes
    left without area dropped; the split's images missing from the file fail naming the first, and images of the
    file outside the split are ignored."""
    data = read_proposals(path)
    by_id = dict(zip((int(i) for i in data["ids"]), data["boxes"]))
    missing = [i for i in image_sizes if i not in by_id]
    if missing:
        raise DataError(f"proposals file '{path}': no proposals for {len(missing)} image(s) of the split (first: id "
                        f"{missing[0]}); write them for this split (zoo-proposals split=...)")
    clipped = Tally("clipped {n} proposals reaching past their image")
    dropped = Tally("dropped {n} proposals with no area")
    empty = Tally("{n} images have no proposal")
    out = {}
    for image_id, (height, width) in image_sizes.items():
        boxes = np.asarray(by_id[image_id], np.float32).reshape(-1, 4)
        limits = np.array([width, height, width, height], np.float32)
        inside = np.clip(boxes, 0, limits)
        clipped.add(str(image_id), int((inside != boxes).any(axis=1).sum()))
        keep = (inside[:, 2] > inside[:, 0]) & (inside[:, 3] > inside[:, 1])
        dropped.add(str(image_id), int((~keep).sum()))
        out[image_id] = inside[keep]
        empty.add(str(image_id), int(not keep.any()))
    for tally in (clipped, dropped, empty):
        tally.warn(f"{dataset} ({path})")
    return out
