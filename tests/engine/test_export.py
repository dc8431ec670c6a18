"""zoo-export: every detector's whole test-time path as one torch.export program that computes what the model does."""
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import TINY
from zoo.config.paths import CONF_DIR
from zoo.apis.run import TrainedRun
from zoo.apis.export import PixelDetector, export_size, same_detections
from zoo.apis.programs import check_program
from zoo.config import model_node
from zoo.models.detectors.build import build_detector

MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
PROGRAMS = Path(__file__).resolve().parents[2] / "zoo" / "apis" / "programs.py"  # the zoo's loader of .pt2 files


def train_tiny(run_dir):
    """A two-step checkpoint of the tiny config: ``<run_dir>/checkpoints/last.pt``."""
    from hydra import compose, initialize_config_dir

    from zoo.engine.trainer import Trainer

    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[*TINY, "trainer.max_iters=2", "trainer.eval_every=0"])
    Trainer(cfg, run_dir).fit()
    return run_dir / "checkpoints" / "last.pt"


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("tiny") / "run")


@pytest.mark.parametrize("name", ["ssd_lite", "refinedet_lite", "faster_rcnn_lite", "fpn_lite", "cornernet_lite"])
def test_every_detector_exports_and_the_program_reproduces_it(compose_cfg, name):
    torch.manual_seed(0)
    cfg = compose_cfg(f"model={name}")
    model = PixelDetector(build_detector(model_node(cfg.model), 3), MEAN, STD, channels_last=True).eval()
    with torch.no_grad():
        exported = torch.export.export(model, (torch.rand(1, 3, 320, 320) * 255,), strict=False)
        program = exported.module()
        saved = io.BytesIO()
        torch.export.save(exported, saved)
        check_program(saved.getvalue(), name)  # the zoo's loader takes every detector's program
        # Other inputs than the traced one: noise, faint noise around the mean colour, and that with a bright
        # patch (no flat image: untrained weights would give exactly tied scores, ranked in no defined order).
        faint = torch.tensor(MEAN).view(1, 3, 1, 1) + torch.randn(1, 3, 320, 320) * 5
        patch = faint.clone()
        patch[..., 100:180, 60:200] += 100.0
        found = 0
        for pixels in (torch.rand(1, 3, 320, 320) * 255, faint, patch):
            eager, exported = model(pixels), program(pixels)
            assert same_detections(eager, exported) is None
            assert eager[0]["boxes"].shape[1] == 4
            found += len(eager[0]["boxes"])
        assert found > 0  # not two empty lists compared


def test_the_export_size_follows_the_test_transform():
    assert export_size({"transforms": {"test": {"type": "resize", "size": 320}}}, None) == (320, 320)
    assert export_size({"transforms": {"test": {"type": "keep_ratio_resize", "short_side": 320, "max_size": 533}}},
                       None) == (533, 533)
    assert export_size({"transforms": {"test": {"type": "resize", "size": 320}}}, [256, 384]) == (256, 384)
    fpn = {"transforms": {"test": {"type": "keep_ratio_resize", "short_side": 800, "max_size": 1333}}}
    assert export_size(fpn, None, divisor=32) == (1344, 1344)  # as FPN's batches are padded
    assert export_size(fpn, [800, 1333], divisor=32) == (800, 1344)
    with pytest.raises(ValueError, match=r"image_size must be \[height, width\], got \[320\]"):
        export_size({"transforms": {"test": {"type": "resize", "size": 320}}}, [320])


def test_same_detections_names_what_differs():
    a = [{"boxes": torch.zeros(2, 4), "scores": torch.ones(2), "labels": torch.zeros(2, dtype=torch.long)}]
    b = [{"boxes": torch.zeros(1, 4), "scores": torch.ones(1), "labels": torch.zeros(1, dtype=torch.long)}]
    c = [{"boxes": torch.full((2, 4), 0.5), "scores": torch.ones(2), "labels": torch.zeros(2, dtype=torch.long)}]
    assert same_detections(a, a) is None
    assert same_detections(a, b) == "image 0: 2 detections against 1"
    assert same_detections(a, c) == "image 0: boxes differ by up to 5.00e-01"


def test_zoo_export_writes_a_checked_program_that_runs_without_the_zoo(tmp_path, tiny_checkpoint):
    checkpoint = tiny_checkpoint
    done = subprocess.run([sys.executable, "-m", "zoo.cli.export", f"checkpoint={checkpoint}", "batch_size=2",
                           f"hydra.run.dir={tmp_path / 'hydra'}"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    path = checkpoint.parents[1] / "export" / "last.pt2"
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.json", "last.pt2"]  # no temporary file left
    assert "it reproduces the model on the first 2 test images" in done.stdout and str(path) in done.stdout
    info = json.loads(path.with_suffix(".json").read_text())
    trained = TrainedRun(str(checkpoint), "cpu")
    model, loader, run_cfg = trained.model, trained.loader("val", 2), trained.run.cfg
    assert info["input_shape"] == [2, 3, 320, 320] and info["class_names"] == list(loader.dataset.class_names)
    assert info["pad_pixel"] == list(run_cfg.data.mean)
    # The program alone, in a process that imports torch and torchvision only, against the checkpoint's model; read
    # with the zoo's loader, a file of its own that needs only torch (run by path: the zoo package stays unimported).
    pixels = torch.rand(2, 3, 320, 320) * 255
    torch.save(pixels, tmp_path / "pixels.pt")
    alone = subprocess.run([sys.executable, "-c", (
        "import runpy, sys, torch, torchvision\n"
        f"load_program = runpy.run_path({str(PROGRAMS)!r})['load_program']\n"
        f"found = load_program({str(path)!r}).module()(torch.load({str(tmp_path / 'pixels.pt')!r}))\n"
        f"torch.save(found, {str(tmp_path / 'found.pt')!r})\n"
        "assert not [m for m in sys.modules if m == 'zoo' or m.startswith('zoo.')]")],
        capture_output=True, text=True, cwd=tmp_path)
    assert alone.returncode == 0, alone.stderr[-2000:]
    exported = torch.load(tmp_path / "found.pt")
    with torch.no_grad():
        eager = PixelDetector(model, run_cfg.data.mean, run_cfg.data.std, channels_last=True)(pixels)
    assert same_detections(eager, exported) is None and len(exported) == 2
    # A batch larger than the split (8 images): the check is topped up with random pixels, and says so.
    from omegaconf import OmegaConf

    from zoo.apis.export import export_checkpoint
    info = export_checkpoint(OmegaConf.create({"checkpoint": str(checkpoint), "out": str(tmp_path / "b10.pt2"),
                                               "image_size": None, "batch_size": 10, "split": "test",
                                               "data_root": None}))
    assert info["checked_on"] == "the first 8 test images and 2 of random pixels"


def test_a_failed_write_leaves_the_previous_program_whole(tmp_path, tiny_checkpoint, monkeypatch):
    """Killed or failing mid-write, zoo-export leaves the program that was there, not a truncated one."""
    from omegaconf import OmegaConf

    from zoo.apis.export import export_checkpoint

    out = tmp_path / "model.pt2"
    cfg = OmegaConf.create({"checkpoint": str(tiny_checkpoint), "out": str(out), "image_size": None,
                            "batch_size": 1, "split": "test", "data_root": None})
    export_checkpoint(cfg)
    program, sidecar = out.read_bytes(), out.with_suffix(".json").read_text()

    def save_then_fail(_, f, *args, **kwargs):
        if hasattr(f, "write"):
            f.write(b"PK\x03\x04 half a program")
            f.flush()
        else:
            Path(f).write_bytes(b"PK\x03\x04 half a program")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch.export, "save", save_then_fail)
    with pytest.raises(OSError, match="No space left"):
        export_checkpoint(cfg)
    assert out.read_bytes() == program and out.with_suffix(".json").read_text() == sidecar
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.pt2"]  # no temporary file left


def test_zoo_export_names_a_missing_checkpoint(tmp_path):
    done = subprocess.run([sys.executable, "-m", "zoo.cli.export", f"checkpoint={tmp_path / 'none.pt'}",
                           f"hydra.run.dir={tmp_path}"], capture_output=True, text=True)
    assert done.returncode == 2 and "zoo-export: error:" in done.stderr and "none.pt" in done.stderr


def test_class_nms_while_exporting_keeps_classes_apart_even_with_negative_coordinates(monkeypatch):
    from zoo.ops.class_nms import class_nms

    class Keep(torch.nn.Module):
        def forward(self, boxes, scores, classes):
            return class_nms(boxes, scores, classes, 0.5)

    boxes = torch.tensor([[-50.0, -50, 300, 300], [-50, -50, 300, 300], [0, 0, 10, 10]])
    scores, classes = torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0, 1, 1])
    program = torch.export.export(Keep(), (boxes, scores, classes), strict=False).module()
    assert program(boxes, scores, classes).tolist() == [0, 1, 2]  # the same box in two classes: both kept
    monkeypatch.setattr(torch.compiler, "is_exporting", lambda: True)  # the exporting path, run eagerly
    assert class_nms(boxes[:0], scores[:0], classes[:0], 0.5).tolist() == []
    assert class_nms(boxes, scores, torch.tensor([0, 0, 1]), 0.5).tolist() == [0, 2]


def test_the_pad_pixel_is_the_one_the_model_trained_with():
    from zoo.data.collate import Collate

    sample = {"image": np.full((2, 2, 3), 7, np.uint8), "boxes": np.zeros((0, 4), np.float32),
              "labels": np.zeros(0, np.int64), "ignore": np.zeros(0, bool), "image_id": 0, "orig_size": (2, 2),
              "scale": (1.0, 1.0), "file": "x.jpg"}
    for pad_fill, pixel in (("mean", [1.0, 2.0, 3.0]), ("black", [0.0, 0.0, 0.0])):
        collate = Collate([1.0, 2.0, 3.0], [2.0, 2.0, 2.0], size_divisor=4, pad_fill=pad_fill)
        assert collate.pad_pixel == pixel
        padded = collate([sample]).images[0, :, 3, 3]  # outside the 2x2 image: the padding, normalised
        assert padded.tolist() == [(p - m) / 2.0 for p, m in zip(pixel, [1.0, 2.0, 3.0])]
