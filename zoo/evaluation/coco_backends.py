"""Run COCOeval (bbox) with pycocotools, the reference, or faster-coco-eval, its C++ re-implementation.

Both take the same in-memory ground-truth dict and an (N, 7) detection array
``[image_id, x, y, w, h, score, category_id]`` and return the COCOeval object after
evaluate/accumulate/summarize (``stats``, ``eval['precision']``, ``params`` are the same in both).

pycocotools prints to stdout; its text is captured and sent to this module's logger at DEBUG,
so ``logging.getLogger('zoo.evaluation.coco_backends').setLevel(logging.DEBUG)`` (with a handler)
shows it again. faster-coco-eval takes a print function and gets the same logger.
"""
from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


def _pycocotools(gt_dataset: dict, detections: np.ndarray) -> Any:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO()
    gt.dataset = gt_dataset
    gt.createIndex()
    return _run(COCOeval(gt, gt.loadRes(detections), "bbox"))


def _faster_coco_eval(gt_dataset: dict, detections: np.ndarray) -> Any:
    from faster_coco_eval import COCO, COCOeval_faster

    gt = COCO(gt_dataset, print_function=logger.debug)
    return _run(COCOeval_faster(gt, gt.loadRes(detections), "bbox", print_function=logger.debug))


def _run(coco_eval: Any) -> Any:
    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_eval.summarize()
    return coco_eval


BACKENDS: dict[str, Callable[[dict, np.ndarray], Any]] = {
    "pycocotools": _pycocotools,
    "faster_coco_eval": _faster_coco_eval,
}


def run_coco_eval(gt_dataset: dict, detections: np.ndarray, backend: str) -> Any:
    if backend not in BACKENDS:
        raise ValueError(f"unknown COCO backend '{backend}'; choose one of {', '.join(BACKENDS)}")
    with _stdout_to_log():
        return BACKENDS[backend](gt_dataset, detections)


@contextlib.contextmanager
def _stdout_to_log() -> Iterator[None]:
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        for line in buffer.getvalue().splitlines():
            if line.strip():
                logger.debug(line)
