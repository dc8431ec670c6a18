"""zoo-import from torchvision: a randomly initialised torchvision detector's state dict, imported, gives torchvision's
detections on BCCD test images. Three checks: zoo's test pipeline prepares the JPEG as torchvision's transform does;
on the same prepared tensor both networks give the same detections to 1e-4; and end to end (zoo's Predictor on the
file against torchvision on the file) they agree too, to 1e-4 of the image's scale in boxes and 1e-3 in scores (the
7e-7 of float rounding in the prepared pixels grows through 50 random layers)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.io import read_image
from torchvision.models.detection import fasterrcnn_resnet50_fpn, ssd300_vgg16

from zoo.apis.export import same_detections
from zoo.apis.import_model import import_checkpoint
from zoo.apis.predict import Predictor
from zoo.apis.run import TrainedRun
from zoo.data import build_loader
from zoo.data.image_list import ImageList
from zoo.models.imports.classes import TORCHVISION_COCO, TORCHVISION_COCO_ROWS

BCCD = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "bccd"
UNUSED = [i for i, name in enumerate(TORCHVISION_COCO) if name == "N/A"]


def bccd_test_images(count: int) -> list[str]:
    if not BCCD.is_dir():
        pytest.skip(f"BCCD not found at {BCCD}")
    ids = (BCCD / "ImageSets" / "Main" / "test.txt").read_text().split()[:count]
    return [str(BCCD / "JPEGImages" / f"{i}.jpg") for i in ids]


def random_faster_rcnn() -> torch.nn.Module:
    torch.manual_seed(0)
    model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91).eval()
    with torch.no_grad():  # random class logits are near-uniform, under the 0.05 threshold: spread them, and as a
        # trained model does, never score the ten unused COCO ids (zoo leaves them out)
        model.roi_heads.box_predictor.cls_score.weight.mul_(4)
        model.roi_heads.box_predictor.cls_score.bias[UNUSED] = -30
    return model


def random_ssd() -> torch.nn.Module:
    torch.manual_seed(0)
    model = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=91).eval()
    with torch.no_grad():  # random VGG logits saturate the softmax (ties in any order): shrink them; mostly background
        for conv in model.head.classification_head.module_list:
            conv.weight.mul_(1e-1)
            conv.bias.view(-1, 91)[:, 0] += 6.0
            conv.bias.view(-1, 91)[:, UNUSED] = -30
    return model


def as_zoo_labels(found: dict) -> dict:
    """torchvision's detections with zoo's labels (its rows of the 80 classes, background gone)."""
    rows = torch.tensor(TORCHVISION_COCO_ROWS)
    return {"boxes": found["boxes"], "scores": found["scores"], "labels": torch.searchsorted(rows, found["labels"]) - 1}


@pytest.fixture(scope="module", params=["fasterrcnn_resnet50_fpn", "ssd300_vgg16"])
def imported(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    reference = random_faster_rcnn() if request.param.startswith("faster") else random_ssd()
    torch.save(reference.state_dict(), folder / "torchvision.pth")
    info = import_checkpoint("torchvision", request.param, folder / "torchvision.pth", folder / "zoo.pt")
    return reference, info["file"]


def test_the_test_pipeline_prepares_a_jpeg_as_torchvision_does(imported):
    reference, checkpoint = imported
    trained = TrainedRun(checkpoint, device="cpu")
    files = bccd_test_images(2)
    batch = next(iter(build_loader(ImageList(files[:1], trained.class_names, trained.test_transform()), 1,
                                   trained.collate())))
    prepared, _ = reference.transform([read_image(files[0]).float() / 255])
    assert batch.images.shape == prepared.tensors.shape
    scale = float(prepared.tensors.abs().max())  # SSD's input is unscaled 0-255 minus the mean: float rounding is larger
    assert (batch.images - prepared.tensors).abs().max() <= 1e-5 + 1e-6 * scale


def test_on_the_same_prepared_image_the_detections_are_torchvisions(imported):
    reference, checkpoint = imported
    model = TrainedRun(checkpoint, device="cpu").model.to(memory_format=torch.contiguous_format)
    for file in bccd_test_images(1):
        with torch.no_grad():
            prepared, _ = reference.transform([read_image(file).float() / 255])
            sizes = prepared.image_sizes
            if hasattr(reference, "rpn"):
                features = reference.backbone(prepared.tensors)
                proposals, _ = reference.rpn(prepared, features)
                expected, _ = reference.roi_heads(features, proposals, sizes)
            else:
                expected = reference.postprocess_detections(*_ssd_raw(reference, prepared), sizes)
            found = model(prepared.tensors, image_sizes=sizes)
        assert len(expected[0]["boxes"]) > 5
        assert same_detections([as_zoo_labels(expected[0])], found, atol=1e-4) is None


def _ssd_raw(reference, prepared):
    features = list(reference.backbone(prepared.tensors).values())
    head = reference.head(features)
    return head, reference.anchor_generator(prepared, features)


@pytest.mark.parametrize("imported", [
    "ssd300_vgg16",
    pytest.param("fasterrcnn_resnet50_fpn", marks=pytest.mark.slow),  # 8 s at 800 px; the two checks above cover it
], indirect=True)
def test_end_to_end_on_the_jpeg_files(imported):
    reference, checkpoint = imported
    files = bccd_test_images(1)
    found = Predictor(checkpoint, device="cpu", batch_size=1)(files)
    for file, zoo in zip(files, found):
        with torch.no_grad():
            expected = as_zoo_labels(reference([read_image(file).float() / 255])[0])
        ours = {k: torch.as_tensor(zoo[k]) for k in ("boxes", "scores", "labels")}
        assert same_detections([expected], [ours], atol=1e-3, box_rtol=1e-4) is None
