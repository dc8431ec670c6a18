"""zoo-import from libraries that cannot run here (detectron2, MMDetection, the papers' ports): a synthetic checkpoint
in each library's own file format, holding every tensor of the committed manifest (names and shapes written from
reading the library's code), imports with every key mapped and every shape checked, and the model runs. Bad files
fail with one line naming the file and the first offending key."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from zoo.apis.import_model import import_checkpoint
from zoo.apis.run import TrainedRun
from zoo.cli.import_model import main as zoo_import
from zoo.models.imports import IMPORTS

MANIFESTS = Path(__file__).parent / "import_manifests"
CASES = {  # (source, model): (manifest, file format)
    ("detectron2", "faster_rcnn_R_50_C4_3x"): ("detectron2/faster_rcnn_R_50_C4_3x.txt", "pkl"),
    ("detectron2", "faster_rcnn_R_50_FPN_3x"): ("detectron2/faster_rcnn_R_50_FPN_3x.txt", "pkl"),
    ("mmdet", "ssd300_coco"): ("mmdet/ssd300_coco.txt", "mmdet"),
    ("mmdet", "faster_rcnn_r50_fpn_1x_coco"): ("mmdet/faster_rcnn_r50_fpn_1x_coco.txt", "mmdet"),
    ("mmdet", "cornernet_hourglass104_mstest_8x6_210e_coco"):
        ("mmdet/cornernet_hourglass104_mstest_8x6_210e_coco.txt", "mmdet"),
    ("ssd.pytorch", "ssd300"): ("ports/ssd_pytorch_ssd300_voc.txt", "bare"),
    ("refinedet.pytorch", "refinedet320"): ("ports/refinedet_pytorch_refinedet320_voc.txt", "bare"),
    ("refinedet.pytorch", "refinedet512"): ("ports/refinedet_pytorch_refinedet512_voc.txt", "bare"),
}
SLOW = {("mmdet", "cornernet_hourglass104_mstest_8x6_210e_coco")}  # 210M parameters: seconds to write and read


def manifest(name: str) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for line in (MANIFESTS / name).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, shape = line.split()
            shapes[key] = () if shape == "-" else tuple(int(d) for d in shape.split(","))
    return shapes


def synthetic_state(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1000)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(shape, generator=generator) * 0.01
    return state


def write(state: dict[str, torch.Tensor], path: Path, kind: str) -> Path:
    if kind == "pkl":  # detectron2's model zoo: a pickle of numpy arrays
        with open(path, "wb") as file:
            pickle.dump({"model": {k: v.numpy() for k, v in state.items()}, "__author__": "Detectron2 Model Zoo"}, file)
    elif kind == "mmdet":
        torch.save({"meta": {"mmdet_version": "2.x", "CLASSES": ["person"]}, "state_dict": state}, path)
    else:
        torch.save(state, path)
    return path


def cases():
    for key, (name, kind) in CASES.items():
        marks = [pytest.mark.slow] if key in SLOW else []
        yield pytest.param(key, name, kind, marks=marks, id=f"{key[0]}-{key[1]}")


def test_every_importable_model_has_a_case():
    assert set(IMPORTS) - {("torchvision", "ssd300_vgg16"), ("torchvision", "fasterrcnn_resnet50_fpn")} == set(CASES)


@pytest.mark.parametrize("key,name,kind", cases())
def test_a_synthetic_checkpoint_of_the_manifest_imports_and_runs(key, name, kind, tmp_path):
    shapes = manifest(name)
    state = synthetic_state(shapes)
    source = write(state, tmp_path / f"source.{'pkl' if kind == 'pkl' else 'pth'}", kind)
    info = import_checkpoint(*key, source, tmp_path / "zoo.pt")
    written = torch.load(info["file"], weights_only=True)
    imported = written["model"]
    counters = any(k.endswith("num_batches_tracked") for k in imported)  # frozen BatchNorm keeps none
    kept = [k for k in shapes if ".cell_anchors." not in k and (counters or not k.endswith("num_batches_tracked"))]
    assert info["tensors"] == len(kept)
    # the tensors that are not class-dependent arrive unchanged (the last backbone tensor stands for them)
    last = [k for k in kept if k.startswith(("backbone", "vgg"))][-1]
    assert any(torch.equal(state[last].float(), v.float()) for v in imported.values() if v.shape == state[last].shape)
    assert written["class_names"] == list(IMPORTS[key].classes)
    if key[1] in ("ssd300", "ssd300_coco", "refinedet320"):  # the small ones run in the suite
        trained = TrainedRun(info["file"], device="cpu")
        size = trained.run.model.input_size
        with torch.no_grad():
            out = trained.model(torch.zeros(1, 3, size, size))
        assert set(out[0]) >= {"boxes", "scores", "labels"}


def test_detectron2_classes_move_background_first_and_the_stem_takes_rgb(tmp_path):
    shapes = manifest(CASES[("detectron2", "faster_rcnn_R_50_FPN_3x")][0])
    state = synthetic_state(shapes)
    source = write(state, tmp_path / "d2.pkl", "pkl")
    model = torch.load(import_checkpoint("detectron2", "faster_rcnn_R_50_FPN_3x", source, tmp_path / "z.pt")["file"],
                       weights_only=True)["model"]
    cls = state["roi_heads.box_predictor.cls_score.weight"]
    assert torch.equal(model["roi_head.cls.weight"][0], cls[80]) and torch.equal(model["roi_head.cls.weight"][1:], cls[:80])
    box = state["roi_heads.box_predictor.bbox_pred.weight"]
    assert torch.equal(model["roi_head.box.weight"][4:], box) and not model["roi_head.box.weight"][:4].any()
    stem = state["backbone.bottom_up.stem.conv1.weight"]
    assert torch.equal(model["backbone.stem.0.weight"][:, 0], stem[:, 2])  # BGR-trained: its blue input is zoo's third


def test_mmdet_ssd_moves_each_default_boxs_background_first(tmp_path):
    state = synthetic_state(manifest(CASES[("mmdet", "ssd300_coco")][0]))
    source = write(state, tmp_path / "ssd.pth", "mmdet")
    model = torch.load(import_checkpoint("mmdet", "ssd300_coco", source, tmp_path / "z.pt")["file"],
                       weights_only=True)["model"]
    theirs, ours = state["bbox_head.cls_convs.0.0.bias"].view(-1, 81), model["head.cls.0.bias"].view(-1, 81)
    assert torch.equal(ours[:, 0], theirs[:, 80]) and torch.equal(ours[:, 1:], theirs[:, :80])


@pytest.fixture
def ssd_pytorch_state():
    return synthetic_state(manifest(CASES[("ssd.pytorch", "ssd300")][0]))


def test_another_models_file_names_the_first_key_it_does_not_know(ssd_pytorch_state, tmp_path):
    source = write(ssd_pytorch_state, tmp_path / "ssd.pth", "bare")
    with pytest.raises(ValueError, match=r"ssd\.pth.*key 'L2Norm\.weight' is not one this model has"):
        import_checkpoint("refinedet.pytorch", "refinedet320", source, tmp_path / "z.pt")
    assert not (tmp_path / "z.pt").exists()


def test_a_missing_tensor_and_a_wrong_shape_are_named(ssd_pytorch_state, tmp_path):
    state = dict(ssd_pytorch_state)
    del state["extras.3.bias"]
    with pytest.raises(ValueError, match=r"tensor for zoo's 'neck\.extras\.1\.1\.0\.bias' is missing"):
        import_checkpoint("ssd.pytorch", "ssd300", write(state, tmp_path / "cut.pth", "bare"), tmp_path / "z.pt")
    state = dict(ssd_pytorch_state, **{"conf.0.weight": torch.zeros(4 * 81, 512, 3, 3)})  # COCO's 81 classes
    with pytest.raises(ValueError, match=r"'head\.cls\.0\.weight' has shape \(324, 512, 3, 3\), the model needs "
                                         r"\(84, 512, 3, 3\)"):
        import_checkpoint("ssd.pytorch", "ssd300", write(state, tmp_path / "coco.pth", "bare"), tmp_path / "z.pt")


class _RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_holding_anything_but_arrays_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "ran"
    payload = _RunsCode()
    payload.marker = marker
    path = tmp_path / "model_final.pkl"
    with open(path, "wb") as file:
        pickle.dump({"model": {"backbone.stem.conv1.weight": np.zeros((64, 3, 7, 7), np.float32)}, "x": payload}, file)
    with pytest.raises(ValueError, match=r"model_final\.pkl.*holds '(posix|nt|os)\.system'.*refused"):
        import_checkpoint("detectron2", "faster_rcnn_R_50_FPN_3x", path, tmp_path / "z.pt")
    assert not marker.exists()


def test_the_command_exits_2_with_one_line(ssd_pytorch_state, tmp_path, capsys):
    source = write(ssd_pytorch_state, tmp_path / "ssd.pth", "bare")
    with pytest.raises(SystemExit) as stop:
        zoo_import(["source=refinedet.pytorch", "model=refinedet512", f"weights={source}", f"out={tmp_path}/z.pt"])
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert "zoo-import: error:" in error and "L2Norm.weight" in error and "Traceback" not in error
    zoo_import(["source=ssd.pytorch", "model=ssd300", f"weights={source}", f"out={tmp_path}/z.pt"])
    assert "imported ssd.pytorch ssd300 as zoo ssd300 (71 tensors, 20 classes)" in capsys.readouterr().out


@pytest.mark.slow  # a training step of ssd300 and its evaluation: 12 s (tests/engine/test_init_from.py is the fast check)
def test_an_imported_checkpoint_starts_a_fine_tuning_run(tmp_path, compose_cfg, caplog):
    from tests.conftest import TINY
    from zoo.engine.trainer import Trainer

    source = write(synthetic_state(manifest(CASES[("mmdet", "ssd300_coco")][0])), tmp_path / "ssd.pth", "mmdet")
    imported = import_checkpoint("mmdet", "ssd300_coco", source, tmp_path / "coco_ssd.pt")["file"]
    with caplog.at_level("INFO"):
        trainer = Trainer(compose_cfg(*TINY, "model=ssd300", "trainer.max_iters=1", "trainer.eval_every=0",
                                      f"model.init_from={imported}"), tmp_path / "run")
        trainer.fit()
    said = caplog.text
    assert "loaded 59 of 71 tensors" in said and "re-initialised 12 class-dependent" in said
    assert "model.priors.scales: [0.07" in said  # the imported conventions this run does not set


@pytest.fixture
def imported_voc_model(tmp_path, ssd_pytorch_state):
    """An imported ssd.pytorch checkpoint and a three-image VOC test split with its classes."""
    from tests.data.conftest import _write_voc

    objects = [("cat", (10, 20, 90, 100)), ("dog", (60, 30, 150, 110))]
    voc = _write_voc(tmp_path / "VOC2007", {f"im{i}": dict(size=(120, 160), objects=objects) for i in range(3)},
                     split="test")
    source = write(ssd_pytorch_state, tmp_path / "ssd300_mAP_77.43_v2.pth", "bare")
    return import_checkpoint("ssd.pytorch", "ssd300", source, tmp_path / "ssd.pt")["file"], voc


def test_zoo_eval_takes_an_imported_checkpoint(tmp_path, imported_voc_model):
    checkpoint, voc = imported_voc_model
    scored = subprocess.run([sys.executable, "-m", "zoo.cli.evaluate", f"checkpoint={checkpoint}", f"data_root={voc}",
                             "plots=false", "progress=false", f"hydra.run.dir={tmp_path / 'eval'}"],
                            capture_output=True, text=True)
    assert scored.returncode == 0, scored.stderr[-2000:]
    assert "objects  detections  recall" in scored.stdout and (tmp_path / "eval" / "results.json").is_file()


@pytest.mark.slow  # torch.export of ssd300 and its check: 10 s
def test_zoo_export_takes_an_imported_checkpoint(tmp_path, imported_voc_model):
    checkpoint, voc = imported_voc_model
    exported = subprocess.run([sys.executable, "-m", "zoo.cli.export", f"checkpoint={checkpoint}", f"data_root={voc}",
                               f"out={tmp_path / 'ssd.pt2'}"], capture_output=True, text=True)
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert "it reproduces the model on the first" in exported.stdout and (tmp_path / "ssd.pt2").is_file()
