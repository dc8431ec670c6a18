"""zoo-predict: any picture is seen as the evaluation sees its test images, and comes back in its own pixels."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import TINY
from zoo.data import DataError, DataWarning
from zoo.data.collate import to_original
from zoo.data.image_list import ImageList, image_files
from zoo.apis.run import TrainedRun
from zoo.apis.predict import Predictor, as_json, draw_found


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from hydra import compose, initialize_config_dir

    from zoo.config.paths import CONF_DIR
    from zoo.engine.trainer import Trainer

    run = tmp_path_factory.mktemp("run")
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[*TINY, "trainer.max_iters=2", "trainer.eval_every=0"])
    Trainer(cfg, run).fit()
    return str(run / "checkpoints" / "last.pt")


def test_predictions_equal_the_evaluation_path_on_the_same_images(checkpoint):
    trained = TrainedRun(checkpoint, "cpu")
    model, loader = trained.model, trained.loader("val", 4)
    batch = next(iter(loader))
    with torch.inference_mode():
        outputs = model.eval()(batch.images.contiguous(memory_format=torch.channels_last),
                               image_sizes=batch.image_sizes)
    arrays = [loader.dataset.load_image(meta.image_id) for meta in batch.metas]
    found = Predictor(checkpoint, device="cpu", batch_size=3)(arrays)  # another batching, same answers
    assert len(found) == 4
    for f, out, meta in zip(found, outputs, batch.metas):
        assert f["size"] == tuple(meta.orig_size) and len(f["boxes"]) == len(out["boxes"]) > 0
        np.testing.assert_allclose(f["boxes"], to_original(out["boxes"], meta).numpy(), atol=1e-3)
        np.testing.assert_allclose(f["scores"], out["scores"].numpy(), atol=1e-5)
        assert f["classes"] == [["circle", "square", "triangle", "cross", "ring"][c] for c in f["labels"]]


def test_files_and_folders_give_json_and_drawn_images(checkpoint, tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    for name, size in (("a.png", (90, 120)), ("b.jpg", (200, 150))):
        cv2.imwrite(str(folder / name), np.full((*size, 3), 127, np.uint8))
    (folder / "notes.txt").write_text("not an image")
    files = image_files([str(folder)])
    assert [f.rsplit("/", 1)[1] for f in files] == ["a.png", "b.jpg"]
    found = Predictor(checkpoint, device="cpu", score_threshold=0.0)(files)
    listed = as_json(found)
    assert [(r["height"], r["width"]) for r in listed] == [(90, 120), (200, 150)]
    for record in listed:
        for det in record["detections"]:
            x1, y1, x2, y2 = det["box"]
            assert 0 <= x1 <= x2 <= record["width"] and 0 <= y1 <= y2 <= record["height"]
    assert json.loads(json.dumps(listed)) == listed
    drawn = draw_found(found, ["circle", "square", "triangle", "cross", "ring"], tmp_path / "drawn")
    assert cv2.imread(drawn[1]).shape == (200, 150, 3)


def test_bad_inputs_name_the_problem(checkpoint, tmp_path):
    with pytest.raises(DataError, match="nope.jpg: no such file or folder"):
        image_files([str(tmp_path / "nope.jpg")])
    with pytest.raises(DataError, match="a folder with no images"):
        image_files([str(tmp_path)])
    with pytest.raises(ValueError, match=r"image 0: expected an \(H, W, 3\) uint8 RGB array, got float32"):
        ImageList([np.zeros((8, 8, 3), np.float32)], ["a"])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="broken.jpg"):
        Predictor(checkpoint, device="cpu")([str(broken)])
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), np.full((40, 50, 3), 90, np.uint8))
    with pytest.warns(DataWarning, match="broken.jpg"):  # skip_bad: the bad one keeps its place, as an error
        predictor = Predictor(checkpoint, device="cpu", batch_size=2, skip_bad=True)
        found = predictor([str(good), str(broken), str(good)])
    assert [f["file"] for f in found] == [str(good), str(broken), str(good)]
    assert "error" in found[1] and found[0]["size"] == found[2]["size"] == (40, 50)
    assert as_json(found)[1] == {"file": str(broken), "error": "unreadable (skip_bad: left out)"}
    assert draw_found(found, predictor.class_names, tmp_path / "drawn") == [str(tmp_path / "drawn" / "0000_good.png"),
                                                           str(tmp_path / "drawn" / "0002_good.png")]
    with pytest.raises(ValueError, match="tta 'flipp' is not a config in conf/tta; known: .*flip"):
        Predictor(checkpoint, device="cpu", tta="flipp")
    bare = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(1)}, bare)
    with pytest.raises(ValueError, match=r"weights.pt' is not a zoo-train checkpoint: it lacks \['model', 'config'"):
        Predictor(str(bare), device="cpu")
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="broken.jpg' cannot be read as a torch checkpoint"):
        Predictor(str(broken), device="cpu")


def test_a_tta_name_is_the_conf_tta_file(checkpoint):
    images = [np.full((60, 80, 3), 120, np.uint8)]
    named = Predictor(checkpoint, device="cpu", tta="flip")(images)
    assert named[0]["boxes"].shape[1] == 4
    from zoo.config.compose import named_tta

    assert named_tta("flip")["views"][1] == {"scale": 1.0, "flip": True}


def test_the_command_writes_predictions(checkpoint, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    cv2.imwrite(str(tmp_path / "x.png"), np.full((64, 80, 3), 90, np.uint8))
    done = subprocess.run([sys.executable, "-m", "zoo.cli.predict", f"checkpoint={checkpoint}",
                           f"inputs=[{tmp_path / 'x.png'}]", f"out={tmp_path / 'out'}", "score_threshold=0.0",
                           "draw=true", "tta=flip"], capture_output=True, text=True, cwd=tmp_path / "elsewhere")
    assert done.returncode == 0, done.stderr
    listed = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert listed[0]["file"].endswith("x.png") and (tmp_path / "out" / "drawn" / "0000_x.png").is_file()
    assert (tmp_path / "out" / ".hydra").is_dir()  # out= holds everything the command writes
    done = subprocess.run([sys.executable, "-m", "zoo.cli.predict", f"checkpoint={checkpoint}",
                           f"inputs=[{tmp_path / 'x.png'}]", f"out={tmp_path / 'out' / 'predictions.json'}"],
                          capture_output=True, text=True, cwd=tmp_path / "elsewhere")
    assert done.returncode == 2 and "predictions.json is a file; out names the folder" in done.stderr
    assert not list((tmp_path / "elsewhere").iterdir())  # nothing in the folder it ran from


def test_paths_may_be_pathlib_and_other_objects_are_refused(tmp_path):
    from pathlib import Path

    cv2.imwrite(str(tmp_path / "p.png"), np.zeros((10, 12, 3), np.uint8))
    assert ImageList([Path(tmp_path / "p.png")], ["a"]).load_image(0).shape == (10, 12, 3)
    with pytest.raises(ValueError, match="image 0: expected a path or an .* array, got int"):
        ImageList([3], ["a"])
