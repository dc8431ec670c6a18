"""ONNX, ONNX Runtime and OpenVINO: every detector family's whole test-time path in one ONNX graph that the runtimes
run as the eager model does, int8 quantisation, and zoo-eval / zoo-predict on an exported file."""
import json

import numpy as np
import pytest
import torch

from tests.engine.test_export import MEAN, STD, train_tiny
from zoo.apis.export import RUNTIME_ATOL, RUNTIME_BOX_RTOL, PixelDetector, same_detections
from zoo.apis.onnx_convert import program_to_onnx
from zoo.apis.runtimes import ExportedDetector, open_session, runtime_for
from zoo.config import model_node
from zoo.models.detectors.build import build_detector

SIZES = {"ssd_lite": 320}  # the others at 256: quicker (ssd_lite's extras need 320)


def pixel_inputs(size=256):
    """Faint noise around the mean colour, and that with a bright patch: no flat image (untrained weights would give
    exactly tied scores, ranked in no defined order)."""
    torch.manual_seed(1)
    faint = torch.tensor(MEAN).view(1, 3, 1, 1) + torch.randn(1, 3, size, size) * 5
    patch = faint.clone()
    patch[..., 80:160, 50:200] += 100.0
    return faint, patch


def as_file(model, path, size=256):
    """``model`` (a PixelDetector) exported at ``size`` and written as ONNX; its sidecar fields for ExportedDetector."""
    example = torch.rand(1, 3, size, size) * 255
    with torch.no_grad():
        program = torch.export.export(model, (example,), strict=False)
    program_to_onnx(program, example, path)
    return {"input_shape": [1, 3, size, size], "mean": [0.0] * 3, "std": [1.0] * 3, "pad_pixel": MEAN}


# CornerNet's takes 40 s (torch's ONNX graph optimiser on its unrolled running maxima): slow; its one ONNX-specific
# operator, the running maximum, is checked on its own below.
@pytest.mark.parametrize("name", ["ssd_lite", "refinedet_lite", "faster_rcnn_lite", "fpn_lite",
                                  pytest.param("cornernet_lite", marks=pytest.mark.slow)])
def test_every_family_runs_under_onnx_runtime_as_it_runs_eagerly(compose_cfg, name, tmp_path):
    torch.manual_seed(0)
    cfg = compose_cfg(f"model={name}")
    model = PixelDetector(build_detector(model_node(cfg.model), 3), MEAN, STD, channels_last=True).eval()
    size = SIZES.get(name, 256)
    info = as_file(model, tmp_path / "model.onnx", size)
    runtime = ExportedDetector(open_session(tmp_path / "model.onnx", "onnxruntime"), info)
    found = 0
    with torch.no_grad():
        for pixels in pixel_inputs(size):
            eager = model(pixels)
            assert same_detections(eager, runtime(pixels), atol=RUNTIME_ATOL, box_rtol=RUNTIME_BOX_RTOL) is None
            found += len(eager[0]["boxes"])
    assert found > 0  # not two empty lists compared


def test_cornernets_running_maximum_is_torchs_cummax(tmp_path):
    class Pools(torch.nn.Module):
        def forward(self, x):
            return x.cummax(2).values + x.flip(3).cummax(3).values.flip(3)

    x = torch.randn(1, 2, 13, 9)
    program = torch.export.export(Pools(), (x,), strict=False)
    program_to_onnx(program, x, tmp_path / "pools.onnx")
    got = open_session(tmp_path / "pools.onnx", "onnxruntime")(x.numpy())
    assert len(got) == 1 and np.array_equal(got[0], Pools()(x).numpy())  # max is exact: equal, not close


def export_cfg(checkpoint, **options):
    from omegaconf import OmegaConf

    return OmegaConf.create({"checkpoint": str(checkpoint), "out": None, "image_size": None, "batch_size": 1,
                             "split": "test", "data_root": None, **options})


def eval_cfg(checkpoint, **options):
    from omegaconf import OmegaConf

    return OmegaConf.create({"checkpoint": str(checkpoint), "split": "test", "device": "cpu", "batch_size": 3,
                             "data_root": None, "plots": False, "precision": "fp32", "evaluator": None, **options})


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("tiny") / "run")


def test_exported_files_score_as_the_checkpoint_under_both_runtimes(tiny_checkpoint):
    from zoo.apis.evaluate import evaluate_checkpoint
    from zoo.apis.export import export_checkpoint
    from zoo.apis.predict import Predictor

    eager = evaluate_checkpoint(eval_cfg(tiny_checkpoint))
    onnx = export_checkpoint(export_cfg(tiny_checkpoint, format="onnx"))
    openvino = export_checkpoint(export_cfg(tiny_checkpoint, format="openvino"))
    folder = tiny_checkpoint.parents[1] / "export"
    assert onnx["file"] == str(folder / "last.onnx") and openvino["file"] == str(folder / "last.openvino.xml")
    assert sorted(p.name for p in folder.iterdir()) == [  # no temporary folder left, one sidecar each
        "last.json", "last.onnx", "last.openvino.bin", "last.openvino.json", "last.openvino.xml"]
    sidecar = json.loads((folder / "last.json").read_text())
    assert sidecar["config"] and sidecar["format"] == "onnx" and sidecar["class_names"] == onnx["class_names"]
    for path, runtime in ((folder / "last.onnx", None), (folder / "last.onnx", "openvino"),
                          (folder / "last.openvino.xml", None)):
        scored = evaluate_checkpoint(eval_cfg(path, runtime=runtime))
        assert scored["runtime"] == (runtime or runtime_for(path))
        for key, value in eager["metrics"].items():
            assert scored["metrics"][key] == pytest.approx(value, abs=1e-3), (path, runtime, key)
    images = [np.random.default_rng(0).integers(0, 255, (100, 140, 3), dtype=np.uint8)]
    by_torch, by_file = Predictor(str(tiny_checkpoint))(images), Predictor(str(folder / "last.onnx"))(images)
    assert same_detections([{k: torch.as_tensor(v) for k, v in f.items() if k in ("boxes", "scores", "labels")}
                            for f in by_torch],
                           [{k: torch.as_tensor(v) for k, v in f.items() if k in ("boxes", "scores", "labels")}
                            for f in by_file], atol=RUNTIME_ATOL, box_rtol=RUNTIME_BOX_RTOL) is None


def test_int8_export_is_calibrated_on_training_images_and_scored(tiny_checkpoint, tmp_path):
    from zoo.apis.evaluate import evaluate_checkpoint
    from zoo.apis.export import export_checkpoint

    out = tmp_path / "tiny.int8.onnx"
    info = export_checkpoint(export_cfg(tiny_checkpoint, format="onnx", int8=True, calibration_images=4, out=str(out)))
    assert info["int8"] and info["calibration_images"] == 4 and "found again" in info["int8_check"]
    import onnx

    ops = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "NonMaxSuppression"} <= ops  # int8 convolutions, float NMS
    scored = evaluate_checkpoint(eval_cfg(out))
    assert 0.0 <= scored["metrics"]["voc07_map50"] <= 1.0


def test_what_a_runtime_cannot_run_is_refused_by_name(tiny_checkpoint, tmp_path):
    from zoo.apis.evaluate import evaluate_checkpoint
    from zoo.apis.export import export_checkpoint
    from zoo.apis.runtimes import read_sidecar
    from zoo.config.compose import named_tta

    assert runtime_for("a/last.pt") == "torch" and runtime_for("m.xml") == "openvino"
    assert runtime_for("m.onnx", "openvino") == "openvino"
    with pytest.raises(ValueError, match="export it first: zoo-export checkpoint=... format=onnx"):
        runtime_for("a/last.pt", "onnxruntime")
    with pytest.raises(ValueError, match="a .xml file runs under openvino"):
        runtime_for("m.xml", "onnxruntime")
    with pytest.raises(ValueError, match="expected one of torch, onnxruntime, openvino"):
        runtime_for("m.onnx", "tensorrt")
    with pytest.raises(ValueError, match="use format=onnx, not format=pt2"):
        export_checkpoint(export_cfg(tiny_checkpoint, int8=True))
    with pytest.raises(ValueError, match="should end in .onnx for format=onnx"):
        export_checkpoint(export_cfg(tiny_checkpoint, format="onnx", out=str(tmp_path / "m.pt2")))
    (tmp_path / "lone.onnx").write_bytes(b"")
    with pytest.raises(ValueError, match="its sidecar .*lone.json is missing"):
        read_sidecar(tmp_path / "lone.onnx")
    path = tmp_path / "m.onnx"
    export_checkpoint(export_cfg(tiny_checkpoint, format="onnx", out=str(path)))
    with pytest.raises(ValueError, match="drop tta=.*compile=True"):
        evaluate_checkpoint(eval_cfg(path, tta=named_tta("flip"), compile=True))
    info = json.loads(path.with_suffix(".json").read_text())
    detector = ExportedDetector(open_session(path, "onnxruntime"), info, name=str(path))
    height, width = info["input_shape"][2:]
    with pytest.raises(ValueError, match=rf"takes images up to {height}x{width}.*image_size=\[{height + 8},"):
        detector(torch.zeros(1, 3, height + 8, width))


def test_a_file_that_does_not_reproduce_the_model_is_refused_and_not_written(tiny_checkpoint, tmp_path, monkeypatch):
    from zoo.apis import export
    from zoo.apis.export import export_checkpoint

    real = export.open_session

    def shifted(path, runtime, threads=None):  # a runtime whose boxes are off by 0.5 px
        session = real(path, runtime, threads)
        return lambda pixels: [a + 0.5 if i % 3 == 0 else a for i, a in enumerate(session(pixels))]

    monkeypatch.setattr(export, "open_session", shifted)
    out = tmp_path / "model.onnx"
    with pytest.raises(ValueError, match="the onnxruntime file does not reproduce the model on test images"):
        export_checkpoint(export_cfg(tiny_checkpoint, format="onnx", out=str(out)))
    assert not any(tmp_path.iterdir())  # neither the file, its sidecar nor the temporary folder


def test_the_command_exports_int8_and_says_what_it_checked(tiny_checkpoint, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "m.int8.onnx"
    done = subprocess.run([sys.executable, "-m", "zoo.cli.export", f"checkpoint={tiny_checkpoint}", "format=onnx",
                           "int8=true", "calibration_images=2", f"out={out}"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "as an ONNX file; int8 (calibrated on 2 training images):" in done.stdout and str(out) in done.stdout
    assert out.is_file() and json.loads(out.with_suffix(".json").read_text())["int8"] is True
