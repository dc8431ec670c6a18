"""Selective search proposals (Uijlings et al. 2013, R-CNN's and Fast R-CNN's) by OpenCV contrib's
``cv2.ximgproc.segmentation``, per image and per split, and a split's proposals cached on disk so that every run
given ``model.proposals: selective_search`` (or ``data.<split>.proposals=selective_search``) computes them once.

Modes: ``fast`` (the mode R-CNN used: 2 colour spaces, 2 segmentation scales, about 1,500-2,000 boxes per image),
``quality`` (more colour spaces and scales, about twice the boxes and three times the time) and ``single`` (one
strategy). The boxes come best ranked first, capped at ``max_proposals``; exact duplicates are dropped. OpenCV ranks
the regions with C's ``rand()``, so that generator is reseeded before every image: an image's boxes, and which of them
the cap keeps, do not depend on what ran before it."""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import functools
import hashlib
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
from tqdm import tqdm

from zoo.data.proposals import write_proposals
from zoo.utils.errors import WorkerDied
from zoo.utils.optional import MissingPackage

MODES = ("fast", "quality", "single")
DEFAULT_MAX = 2000  # R-CNN's "about 2000 region proposals" per image
# The names ``data.<split>.proposals`` takes instead of a file.
NAMES = {"selective_search": "fast", **{f"selective_search_{mode}": mode for mode in MODES}}
INSTALL = ("selective search needs OpenCV's contrib modules (cv2.ximgproc): pip install --no-deps "
           "opencv-contrib-python-headless=={version} (the same version as opencv-python-headless, installed over "
           "it; `make install` does this)")


def _segmentation():
    import cv2

    if not hasattr(cv2, "ximgproc"):
        raise MissingPackage(INSTALL.format(version=_opencv_version()), name="cv2.ximgproc")
    return cv2, cv2.ximgproc.segmentation


def _opencv_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("opencv-python-headless")
    except PackageNotFoundError:
        import cv2

        return cv2.__version__


@functools.cache
def _c_library():
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


def _seed_c_rand() -> None:
    # OpenCV's selective search ranks regions by level x rand(): without a seed the order, and so the cap, would
    # depend on every rand() call made before. Python offers no srand, hence ctypes.
    library = _c_library()
    if library is not None:
        library.srand(0)


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"selective search mode '{mode}': expected one of {', '.join(MODES)}")


def selective_search(image: np.ndarray, mode: str = "fast", max_proposals: int = DEFAULT_MAX) -> np.ndarray:
    """An RGB uint8 image's proposals: (N, 4) float32 x1, y1, x2, y2 in its pixels, best ranked first."""
    _check_mode(mode)
    _, segmentation = _segmentation()
    search = segmentation.createSelectiveSearchSegmentation()
    search.setBaseImage(np.ascontiguousarray(image[..., ::-1]))  # OpenCV's colour conversions read BGR
    {"fast": search.switchToSelectiveSearchFast, "quality": search.switchToSelectiveSearchQuality,
     "single": search.switchToSingleStrategy}[mode]()
    _seed_c_rand()
    rects = np.asarray(search.process(), np.float32).reshape(-1, 4)
    boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)
    _, first = np.unique(boxes, axis=0, return_index=True)
    return boxes[np.sort(first)][:max_proposals]


SERIAL_SECONDS = 5.0  # a split expected to take longer in one process is shared among the cores (workers=None)


def default_workers() -> int:
    """The CPU cores this process may use (all of them where the system does not say): one image per core."""
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    return max(len(cores), 1)


_WORK: tuple | None = None  # (dataset, mode, cap) in a worker process, set by _start_worker


def _start_worker(dataset, mode: str, max_proposals: int) -> None:
    global _WORK
    _WORK = dataset, mode, max_proposals  # OpenCV runs on one thread here (_forking_pool): one image per process


def _search_one(index: int, work: tuple | None = None) -> tuple[int, np.ndarray, float]:
    dataset, mode, max_proposals = work or _WORK
    image, ann = dataset.load(index)
    started = time.perf_counter()
    boxes = selective_search(image, mode, max_proposals)
    return int(ann["image_id"]), boxes, time.perf_counter() - started


@contextlib.contextmanager
def _forking_pool(workers: int, work: tuple):
    """``workers`` forked processes searching images by index, as a function of the indices (results in order).
    Forked, so the workers have the data set as it is (nothing pickled, no module imported again, and a script
    without a ``__main__`` guard works); OpenCV's thread pool is shut while they start, since a process forked with
    it running hangs in its first parallel call; each worker then runs OpenCV on one thread."""
    import cv2

    threads = cv2.getNumThreads()
    cv2.setNumThreads(0)
    try:
        with ProcessPoolExecutor(workers, multiprocessing.get_context("fork"), _start_worker, work) as pool:
            pool.submit(int, 0).result()  # a forking pool starts every worker at its first task: all of them now
            cv2.setNumThreads(threads)
            yield lambda indices: pool.map(_search_one, indices)
    finally:
        cv2.setNumThreads(threads)


def split_selective_search(dataset, mode: str = "fast", max_proposals: int = DEFAULT_MAX, progress: bool = True,
                           desc: str = "selective search", workers: int | None = None,
                           ) -> tuple[list[int], list[np.ndarray], list[float]]:
    """Every image of a data set (zoo.data.DetectionDataset) in its own pixels: image ids, boxes, and the seconds
    each image took in its process. ``workers`` processes take one image at a time; None: one per CPU core once the
    first image's time says the split would take more than SERIAL_SECONDS in one process. Each image reseeds C's
    generator, so the boxes are the same whatever the number of workers."""
    _check_mode(mode)  # before any process starts
    _segmentation()
    if workers is not None and int(workers) < 1:
        raise ValueError(f"selective search: workers must be at least 1, got {workers}")
    count = len(dataset)
    with tqdm(total=count, desc=f"{desc} ({mode})", unit="image", disable=not progress) as bar:
        results = _search_all((dataset, mode, max_proposals), workers, bar, f"{desc} ({mode}")
    ids, boxes, seconds = (list(column) for column in zip(*results)) if results else ([], [], [])
    return ids, boxes, seconds


def _search_all(work: tuple, workers: int | None, bar, label: str) -> list[tuple[int, np.ndarray, float]]:
    dataset = work[0]
    count = len(dataset)
    results = [_search_one(0, work)] if count and workers is None else []
    bar.update(len(results))
    if workers is None:
        slow = results and results[0][2] * (count - 1) > SERIAL_SECONDS
        workers = default_workers() if slow else 1
    todo = range(len(results), count)
    if workers == 1 or len(todo) < 2:
        for index in todo:
            results.append(_search_one(index, work))
            bar.update()
    else:
        bar.set_description(f"{label}, {min(workers, len(todo))} processes)")
        try:
            with _forking_pool(min(workers, len(todo)), work) as found:
                for one in found(todo):
                    results.append(one)
                    bar.update()
        except BrokenProcessPool as err:
            raise WorkerDied(f"selective search: a worker process died (out of memory, or killed) after {len(results)} "
                             f"of {count} images of {getattr(dataset, 'name', 'the data')}; nothing was kept; "
                             "`zoo-proposals method=selective_search ... workers=1` searches a split in one process, "
                             "into a file that data.<split>.proposals=<file> takes") from err
    return results


def cache_dir() -> Path:
    """``$ZOO_CACHE/proposals``, else ``$XDG_CACHE_HOME/zoo/proposals``, else ``~/.cache/zoo/proposals``."""
    root = os.environ.get("ZOO_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "zoo"
    return Path(root) / "proposals"


CACHE_VERSION = 1  # raised when zoo's own handling of OpenCV's boxes changes, so that older cached files are not read


def _key(dataset, mode: str, max_proposals: int) -> str:
    """What the proposals depend on: the images (path, size and modification time, or the pixels of a drawn one), each
    one's id and size in the annotations, the mode, the cap, OpenCV's version and zoo's handling of its boxes."""
    images = []
    for index in range(len(dataset)):
        file, ann = Path(dataset.file(index)), dataset.get_annotation(index)
        if file.is_file():
            found = file.stat()
            seen = (str(file.resolve()), found.st_size, int(found.st_mtime))
        else:  # a drawn image (synthetic data) has a name only: its pixels say what it is
            seen = (str(file), hashlib.sha1(dataset.load(index)[0].tobytes()).hexdigest())
        images.append((*seen, int(ann["image_id"]), int(ann["height"]), int(ann["width"])))
    import cv2

    blob = json.dumps({"images": images, "mode": mode, "max": max_proposals, "opencv": cv2.__version__,
                       "version": CACHE_VERSION})
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def cached_selective_search(dataset, mode: str = "fast", max_proposals: int = DEFAULT_MAX,
                            progress: bool = True, log=None) -> Path:
    """The file of the data set's selective-search proposals, computed the first time (other processes asking for
    the same file meanwhile wait for it, under a lock) and read from the cache after (written atomically: a file
    there is whole)."""
    folder = cache_dir()
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in dataset.name).strip("_")
    path = folder / f"{name}-{mode}-{max_proposals}-{_key(dataset, mode, max_proposals)}.pkl"
    if path.is_file():
        return path
    _segmentation()  # fail before waiting or computing when OpenCV's contrib modules are missing
    folder.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second run waits for the first one's file instead of computing it too
        if not path.is_file():
            if log is not None:
                log(f"{dataset.name}: selective search ({mode}) over {len(dataset)} images, cached in {path}")
            ids, boxes, seconds = split_selective_search(dataset, mode, max_proposals, progress, dataset.name)
            write_proposals(path, ids, boxes, None, method=f"selective_search:{mode}", seconds_per_image=seconds)
    return path


def image_proposer(value: str | None):
    """For images outside any split (zoo-predict): a model's ``proposals`` method as a function of an image's pixels,
    or None when it names no method."""
    if value not in NAMES:
        return None
    _segmentation()
    return functools.partial(selective_search, mode=NAMES[value])


def proposals_source(value: str, dataset, progress: bool = True, log=None) -> str:
    """A split's ``proposals`` setting as a file: a method's name (``selective_search``, ``selective_search_quality``,
    ...) becomes its cached file; anything else is a file already."""
    if value in NAMES:
        return str(cached_selective_search(dataset, NAMES[value], progress=progress, log=log))
    return value
