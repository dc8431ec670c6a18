"""The sample contract every data set keeps (see DESIGN.md and zoo/data/__init__.py).

A sample is a dict: ``image`` (H, W, 3) RGB after the transform; ``boxes`` (N, 4) float32 xyxy in
the transformed image's pixels; ``labels`` (N,) int64 in 0..C-1; ``ignore`` (N,) bool; ``image_id``
(the data set index); ``file``; ``orig_size`` (h, w) as stored; ``scale`` (sx, sy) with input pixel =
original pixel * scale. A key is an index or ``(index, seed)``; with a seed, every random choice of
the transform comes from that seed, so a resumed run sees the same samples whatever the worker count.
"""
from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable

import cv2
import numpy as np
from torch.utils.data import Dataset

from zoo.data.annotations import ImageRecord, as_targets
from zoo.data.errors import DataError, DataWarning, Tally
from zoo.data.proposals import proposals_for


def split_key(key) -> tuple[int, int | None]:
    if isinstance(key, (tuple, list)):
        index, seed = key
        return int(index), int(seed)
    return int(key), None


# A JPEG marker: 0xFF, any 0xFF fill bytes, then a code that is not 0x00 (a stuffed 0xFF data byte), not a
# restart marker (RST0-7, inside entropy-coded data) and not 0xFF.
_JPEG_MARKER = re.compile(rb"\xff+([^\x00\xd0-\xd7\xff])")
_STANDALONE = {0x01, 0xD8}  # TEM and SOI carry no length; RSTn are skipped by the pattern
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}  # frame headers: the size


def _jpeg_markers(data: bytes):
    """Each marker of a JPEG as (code, the offset just past it), walking the segments by their stated lengths and
    passing over each scan's entropy-coded data as a decoder does; stops where the data runs out."""
    pos = 2
    while match := _JPEG_MARKER.search(data, pos):
        code, pos = match.group(1)[0], match.end()
        yield code, pos
        if code not in _STANDALONE:
            if pos + 2 > len(data):
                return
            pos += int.from_bytes(data[pos:pos + 2], "big")


def jpeg_end(data: bytes) -> int | None:
    """Where a JPEG's data ends: the offset just past its end-of-image marker (an EXIF thumbnail's markers or a
    trailer's bytes are never mistaken for it); None if the file ends first."""
    return next((pos for code, pos in _jpeg_markers(data) if code == 0xD9), None)


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's or a JPEG's header, without decoding it; None for other formats."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] == b"\xff\xd8":
        for code, pos in _jpeg_markers(data):
            if code in _SOF and pos + 7 <= len(data):
                return int.from_bytes(data[pos + 5:pos + 7], "big"), int.from_bytes(data[pos + 3:pos + 5], "big")
            if code in (0xD9, 0xDA):  # the image's end, or its first scan: no frame header before it
                return None
    return None


def _pixel_cap() -> str:
    """OpenCV's cap on the pixels of an image it decodes: 2^30 unless OPENCV_IO_MAX_IMAGE_PIXELS says otherwise."""
    return os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS") or str(1 << 30)


def _decode_error(path: str, data: bytes, error: cv2.error) -> DataError:
    """OpenCV's refusal (an assertion with its source line, over several lines) as one line saying why."""
    text = str(error)
    if "CV_IO_MAX_IMAGE" in text:  # validateInputImageSize: too many pixels, or a side over 2^20
        size = declared_size(data)
        what = f"{size[0]}x{size[1]} is {size[0] * size[1]} pixels; " if size else ""
        return DataError(f"cannot read image {path}: too many pixels ({what}OpenCV decodes at most {_pixel_cap()} "
                         "pixels and 1048576 a side; the environment variable OPENCV_IO_MAX_IMAGE_PIXELS raises the "
                         "pixel cap where the memory allows)")
    reason = next((line.split("error: ", 1)[-1].strip() for line in text.splitlines() if line.strip()), "")
    return DataError(f"cannot read image {path}: OpenCV cannot decode it ({reason})")


def read_image(path: str) -> np.ndarray:
    """RGB uint8 pixels as stored; EXIF rotation is ignored because boxes are drawn on stored pixels.
    A JPEG cut short fails too: OpenCV would decode it and paint the missing rows grey. Bytes after a
    JPEG's end (a phone's or a camera's trailer) are not part of the image and are let be."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        raise DataError(f"cannot read image {path} ({error.strerror or error})") from None
    if not data:
        raise DataError(f"cannot read image {path}: the file is empty")
    # Segments walked, not a 2nd decode (PIL) or OpenCV's log: cheap, and no global flag or log level sways it.
    if data[:2] == b"\xff\xd8" and jpeg_end(data) is None:
        raise DataError(f"cannot read image {path}: truncated JPEG (the data ends before its end-of-image marker)")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error as error:
        raise _decode_error(path, data, error) from None
    if image is None:
        raise DataError(f"cannot read image {path} (missing, truncated or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def require_path(path: str, what: str) -> str:
    """Fail early, and say where we looked: a relative root is resolved against the run's cwd."""
    if not os.path.exists(path):
        where = "" if os.path.isabs(path) else f" (relative to the current directory {os.getcwd()})"
        raise DataError(f"{what} {path!r} does not exist{where}; point at the data set with data.root=<folder> "
                        "(zoo-train, zoo-reproduce's overrides) or data_root=<folder> (zoo-eval, zoo-export, "
                        "zoo-visualize)")
    return path


def identity_transform(image, boxes, labels, ignore, seed=None, proposals=None) -> dict:
    out = dict(image=image, boxes=boxes, labels=labels, ignore=ignore, scale=(1.0, 1.0))
    if proposals is not None:
        out["proposals"] = np.asarray(proposals, np.float32).reshape(-1, 4)
    return out


class DetectionDataset(Dataset):
    """Turns (image, annotation) pairs into samples. Subclasses provide ``__len__``, ``file``,
    ``get_annotation`` and ``load_image`` (or ``load`` when image and boxes are made together)."""

    class_names: list[str]

    def __init__(self, name: str, transform=None, skip_bad: bool = False):
        self.name = name  # "voc[trainval]": prefixes every message about this data set
        self.transform = transform or identity_transform
        self.skip_bad = skip_bad
        # With skip_bad, an unreadable image is replaced by the next one (training: one sample lost), or,
        # where a repeat would be scored twice (evaluation splits: stand_in False), left out: the sample
        # is None, Collate drops it and counts it in Batch.skipped.
        self.stand_in = True
        self.cache: dict[int, tuple[np.ndarray, dict]] | None = None  # {} keeps every loaded sample (see load_cached)
        self.proposals: dict[int, np.ndarray] | None = None  # given RoIs per image (attach_proposals)
        self.proposals_file: str | None = None  # the file they were read from
        # Without a file: each image's proposals made from its pixels when it is loaded (zoo-predict on any image)
        self.propose: Callable[[np.ndarray], np.ndarray] | None = None

    def attach_proposals(self, path: str) -> None:
        """Each sample also carries ``proposals`` (N, 4), read from a proposals file (zoo.data.proposals), checked
        against this data set's images and moved by the transform as the boxes are."""
        sizes = {}
        for index in range(len(self)):
            ann = self.get_annotation(index)
            sizes[index] = (int(ann["height"]), int(ann["width"]))
        self.proposals = proposals_for(path, sizes, self.name)
        self.proposals_file = str(path)

    def __len__(self) -> int:
        raise NotImplementedError

    def file(self, index: int) -> str:
        raise NotImplementedError

    def get_annotation(self, index: int) -> dict:
        """Ground truth in original pixels: image_id, boxes, labels, ignore, height, width."""
        raise NotImplementedError

    def load_image(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def load(self, index: int) -> tuple[np.ndarray, dict]:
        image, ann = self.load_image(index), self.get_annotation(index)
        if image.shape[:2] != (ann["height"], ann["width"]):
            raise DataError(f"{self.file(index)}: image is {image.shape[1]}x{image.shape[0]} but its annotation "
                            f"says {ann['width']}x{ann['height']} (width x height)")
        return image, ann

    def load_cached(self, index: int) -> tuple[np.ndarray, dict]:
        """``load``, kept in memory after the first time when ``cache`` is a dict, so that later epochs skip
        decoding or drawing. Copies are handed out: transforms may write into what they are given."""
        if self.cache is None:
            return self.load(index)
        if index not in self.cache:
            self.cache[index] = self.load(index)
        image, ann = self.cache[index]
        return image.copy(), {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in ann.items()}

    def __getitem__(self, key) -> dict | None:
        index, seed = split_key(key)
        if not 0 <= index < len(self):
            raise IndexError(f"{self.name}: index {index} out of range 0..{len(self) - 1}")
        loaded = self._load_or_fallback(index)
        if loaded is None:
            return None
        image, ann = loaded
        given = ({"proposals": self.proposals[ann["image_id"]]} if self.proposals is not None else
                 {"proposals": self.propose(image)} if self.propose is not None else {})
        out = self.transform(image, ann["boxes"], ann["labels"], ann["ignore"], seed=seed, **given)
        boxes, labels, ignore = as_targets(out["boxes"], out["labels"], out["ignore"])
        sample = dict(image=out["image"], boxes=boxes, labels=labels, ignore=ignore, image_id=ann["image_id"],
                      file=self.file(ann["image_id"]), orig_size=(ann["height"], ann["width"]),
                      scale=tuple(float(s) for s in out["scale"]))
        if given:
            sample["proposals"] = out["proposals"]
        return sample

    def _load_or_fallback(self, index: int) -> tuple[np.ndarray, dict] | None:
        # A corrupt file is only found when decoded; with skip_bad the next index stands in, so one bad
        # JPEG costs one sample instead of a crashed run (the sample keeps the stand-in's image_id).
        for step in range(len(self)):
            try:
                return self.load_cached((index + step) % len(self))
            except DataError as err:
                if not self.skip_bad:
                    raise
                instead = "using the next image instead" if self.stand_in else "left out"
                warnings.warn(f"{self.name}: skip_bad: {err}; {instead}", DataWarning, stacklevel=3)
                if not self.stand_in:
                    return None
        raise DataError(f"{self.name}: no image could be read")


class RecordDataset(DetectionDataset):
    """A data set of image files whose annotations were parsed up front into ``ImageRecord`` s."""

    def __init__(self, name: str, records: list[ImageRecord], class_names: list[str], transform=None,
                 skip_bad: bool = False):
        super().__init__(name, transform, skip_bad)
        self.class_names = list(class_names)
        self.records = self._existing(records)
        self._warn_unused_classes()

    def _warn_unused_classes(self) -> None:
        # A class without objects is never learnt (and scores no AP). Whether this is the training split is the
        # loader's knowledge, not the data set's, so every split of a record data set says it, once, when built.
        labels = [record.labels for record in self.records]
        counts = np.bincount(np.concatenate(labels) if labels else np.zeros(0, np.int64),
                             minlength=len(self.class_names))
        unused = [name for name, n in zip(self.class_names, counts) if n == 0]
        if unused:
            per_class = ", ".join(f"{name} {n}" for name, n in zip(self.class_names, counts))
            warnings.warn(f"{self.name}: no object of class(es) {', '.join(map(repr, unused))} in this split "
                          f"(objects per class: {per_class})", DataWarning, stacklevel=3)

    def _existing(self, records: list[ImageRecord]) -> list[ImageRecord]:
        # Checked up front so that skipping keeps indices (image_id) stable for the whole run.
        missing = Tally("skipped {n} images whose file is missing")
        kept = []
        for record in records:
            if os.path.exists(record.file):
                kept.append(record)
            elif not self.skip_bad:
                raise DataError(f"{self.name}: image file {record.file} (for {record.source}) does not exist; "
                                f"pass skip_bad=true to skip such images")
            else:
                missing.add(os.path.basename(record.file))
        missing.warn(self.name)
        return kept

    def __len__(self) -> int:
        return len(self.records)

    def file(self, index: int) -> str:
        return self.records[index].file

    def get_annotation(self, index: int) -> dict:
        return self.records[index].annotation(index)

    def load_image(self, index: int) -> np.ndarray:
        return read_image(self.records[index].file)
