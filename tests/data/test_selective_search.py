"""Selective search proposals (zoo.data.selective_search): OpenCV contrib's boxes in the image's pixels, the same
for an image whatever ran before, cached once per split, and named as a split's proposals instead of a file."""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torchvision.ops import box_iou

from tests.conftest import TINY
from zoo.data.proposals import read_proposals
from zoo.data.selective_search import cached_selective_search, selective_search

pytest.importorskip("cv2.ximgproc", reason="OpenCV contrib (make install puts it over opencv-python-headless)")


def scene(seed=0):
    """A grey 120 x 160 image with a red square and a blue disc on a noisy background."""
    rng = np.random.default_rng(seed)
    image = rng.integers(100, 130, (120, 160, 3), dtype=np.uint8)
    image[20:60, 30:70] = (220, 30, 30)
    yy, xx = np.mgrid[:120, :160]
    image[(yy - 80) ** 2 + (xx - 115) ** 2 < 20 ** 2] = (30, 40, 210)
    return image


@pytest.mark.parametrize("mode", ["fast", "single"])
def test_boxes_are_in_the_images_pixels_and_find_its_objects(mode):
    boxes = selective_search(scene(), mode, max_proposals=300)
    assert boxes.dtype == np.float32 and boxes.shape[1] == 4 and 0 < len(boxes) <= 300
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 160).all() and (boxes[:, 3] <= 120).all()
    assert (boxes[:, 2:] > boxes[:, :2]).all() and len(np.unique(boxes, axis=0)) == len(boxes)
    objects = np.array([[30, 20, 70, 60], [95, 60, 135, 100]], np.float32)
    assert box_iou(torch.from_numpy(objects), torch.from_numpy(boxes)).max(dim=1).values.min() > 0.8  # each object has a box about it


def test_an_images_boxes_do_not_depend_on_what_ran_before():
    first = selective_search(scene(0))
    selective_search(scene(1), "quality")  # draws from OpenCV's random generator
    assert np.array_equal(selective_search(scene(0)), first)


def test_a_mode_that_does_not_exist_is_named():
    with pytest.raises(ValueError, match="mode 'slow'.*fast, quality, single"):
        selective_search(scene(), "slow")


def test_without_opencv_contrib_the_error_says_how_to_install_it(monkeypatch):
    import cv2

    monkeypatch.delattr(cv2, "ximgproc")
    with pytest.raises(ImportError, match="pip install --no-deps opencv-contrib-python-headless=="):
        selective_search(scene())


def test_a_split_is_searched_once_and_read_from_the_cache_after(compose_cfg, tmp_path, monkeypatch):
    import zoo.data.selective_search as module
    from zoo.config.run import RunConfig
    from zoo.engine.loaders import build_split

    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    searched = []
    real = module.split_selective_search
    monkeypatch.setattr(module, "split_selective_search", lambda *a, **k: searched.append(a[1]) or real(*a, **k))
    cfg = compose_cfg(*TINY, "model=fast_rcnn_lite", "+data.val.proposals=selective_search")
    for _ in range(2):
        loader, _ = build_split(RunConfig.from_composed(cfg), "val", 2)
    assert searched == ["fast"]  # the second loader read the file the first one wrote
    files = list((tmp_path / "cache" / "proposals").glob("*-fast-2000-*.pkl"))
    assert len(files) == 1 and read_proposals(files[0])["method"] == "selective_search:fast"
    assert len(read_proposals(files[0])["seconds_per_image"]) == 8 and loader.dataset.proposals is not None
    assert cached_selective_search(loader.dataset, "single", 100, progress=False) != files[0]  # another mode: another file
    assert searched == ["fast", "single"]


def test_fast_rcnn_trains_on_selective_search_named_as_the_splits_proposals(compose_cfg, tmp_path, monkeypatch):
    from zoo.engine.trainer import Trainer

    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    cfg = compose_cfg(*TINY, "model=fast_rcnn_lite", "trainer.max_iters=2", "trainer.eval_every=0",
                      "+data.train.proposals=selective_search", "+data.val.proposals=selective_search")
    results = Trainer(cfg, tmp_path / "run").fit()
    assert results["steps"] == 2 and 0.0 <= results["metrics"]["voc07_map50"] <= 1.0


def test_zoo_proposals_writes_a_splits_selective_search(compose_cfg, tmp_path):
    from zoo.apis.proposals import write_selective_search

    data = compose_cfg(*TINY).data
    info = write_selective_search(data, tmp_path / "val.pkl", split="val", mode="fast", max_proposals=100,
                                  progress=False)
    written = read_proposals(tmp_path / "val.pkl")
    assert info["images"] == 8 and written["ids"] == list(range(8)) and written["objectness_logits"] is None
    assert all(0 < len(b) <= 100 for b in written["boxes"]) and info["seconds_per_image"] > 0
    with pytest.raises(ValueError, match="needs a data set with a 'val' split: add data=<name>"):
        write_selective_search(OmegaConf.create({}), tmp_path / "x.pkl", split="val")


def test_zoo_predict_gives_a_detector_of_given_proposals_each_pictures_own(compose_cfg, tmp_path):
    from zoo.apis.predict import Predictor
    from zoo.engine.trainer import Trainer

    cfg = compose_cfg(*TINY, "model=fast_rcnn_lite", "trainer.max_iters=1", "trainer.eval_every=0",
                      "data.eval_images=2")
    Trainer(cfg, tmp_path / "run").fit()
    predictor = Predictor(str(tmp_path / "run" / "checkpoints" / "last.pt"), device="cpu", batch_size=1)
    found = predictor([scene(0), scene(1)])  # two batches: searched in loader processes (on 2 cores or more)
    assert [f["size"] for f in found] == [(120, 160)] * 2 and all(len(f["boxes"]) == len(f["scores"]) for f in found)
    assert all((f["boxes"][:, 2] <= 160).all() for f in found)
    for picture, seen in zip((scene(0), scene(1)), found):  # one picture alone: searched in this process
        alone = predictor([picture])[0]
        assert np.array_equal(alone["boxes"], seen["boxes"]) and np.array_equal(alone["scores"], seen["scores"])


def test_zoo_proposals_names_what_each_method_needs(tmp_path, monkeypatch, capsys):
    import sys

    import cv2

    from zoo.cli.proposals import main

    cases = [(["method=selective_search"], "needs a data set with a 'test' split: add data=<name>"),
             (["method=rpn"], "method=rpn needs checkpoint=<a two-stage run's checkpoint>"),
             (["method=edge_boxes"], "method=edge_boxes; expected one of rpn, selective_search"),
             (["data=bccd", "checkpoint=x.pt", "method=selective_search"], "reads a data set (data=...), not a checkpoint")]
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    for given, said in cases:
        monkeypatch.setattr(sys, "argv", ["zoo-proposals", f"out={tmp_path / 'p.pkl'}", *given])
        with pytest.raises(SystemExit) as stopped:
            main()
        assert stopped.value.code == 2 and said in capsys.readouterr().err
    monkeypatch.delattr(cv2, "ximgproc")  # OpenCV without its contrib modules: one line saying what to install
    monkeypatch.setattr(sys, "argv", ["zoo-proposals", f"out={tmp_path / 'p.pkl'}", "data=synthetic",
                                      "data.val.num_images=2", "split=val"])
    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == 2 and "pip install --no-deps opencv-contrib-python-headless==" in capsys.readouterr().err


def test_processes_find_what_one_process_finds_in_the_same_order(compose_cfg, monkeypatch):
    import zoo.data.selective_search as module
    from zoo.config.run import RunConfig
    from zoo.engine.loaders import build_split

    loader, _ = build_split(RunConfig.from_composed(compose_cfg(*TINY)), "val", 2)
    ids, boxes, seconds = module.split_selective_search(loader.dataset, "fast", 500, progress=False, workers=1)
    # workers=None shares a split among the cores when one process would take long: here, any split
    monkeypatch.setattr(module, "SERIAL_SECONDS", 0.0)
    monkeypatch.setattr(module, "default_workers", lambda: 2)
    started = []
    monkeypatch.setattr(module, "ProcessPoolExecutor", lambda *a: started.append(a[0]) or ProcessPoolExecutor(*a))
    ids2, boxes2, seconds2 = module.split_selective_search(loader.dataset, "fast", 500, progress=False)
    assert started == [2]
    assert ids == ids2 == [int(loader.dataset.get_annotation(i)["image_id"]) for i in range(8)]
    assert all(np.array_equal(a, b) for a, b in zip(boxes, boxes2)) and len(seconds2) == 8 and min(seconds2) > 0
    with pytest.raises(ValueError, match="workers must be at least 1, got 0"):
        module.split_selective_search(loader.dataset, "fast", workers=0)


def test_a_script_without_a_main_guard_shares_a_split_among_processes(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "script.py"  # module-level code, as a notebook or a quick script has it
    script.write_text(
        "from zoo.data.synthetic import SyntheticShapes\n"
        "from zoo.data.selective_search import split_selective_search\n"
        "images = SyntheticShapes(num_images=4, image_size=96, split='val')\n"
        "ids, boxes, _ = split_selective_search(images, 'fast', 100, progress=False, workers=2)\n"
        "print(ids, min(len(b) for b in boxes))\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    found = done.stdout.split("]")
    assert found[0] == "[0, 1, 2, 3" and int(found[1]) > 0


def test_a_worker_that_dies_is_named_with_what_to_do(compose_cfg, monkeypatch):
    import os

    import zoo.data.selective_search as module
    from zoo.config.run import RunConfig
    from zoo.engine.loaders import build_split
    from zoo.utils.errors import WorkerDied

    loader, _ = build_split(RunConfig.from_composed(compose_cfg(*TINY)), "val", 2)
    parent, real, third = os.getpid(), module.selective_search, loader.dataset.load(2)[0]
    # a forked worker runs this module as the parent left it: the third image's search ends its process
    monkeypatch.setattr(module, "selective_search", lambda image, *a: os._exit(9) if os.getpid() != parent and
                        np.array_equal(image, third) else real(image, *a))
    with pytest.raises(WorkerDied, match=r"a worker process died .* of 8 images of .*; `zoo-proposals .* workers=1` searches a split in one"):
        module.split_selective_search(loader.dataset, "fast", 100, progress=False, workers=2)
