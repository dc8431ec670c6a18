"""Backbone weights by name: torchvision's enum resolved through torch's cache ($TORCH_HOME), no network."""
from __future__ import annotations

import pytest
import torch
from torchvision.models import ResNet50_Weights, VGG16_Weights, resnet50, vgg16

from zoo.models.backbones.resnet import ResNet
from zoo.models.backbones.vgg import VGG16Reduced
from zoo.models.weights import IMAGENET, OFFLINE_ENV, is_named


def place_in_cache(tmp_path, weights, model) -> None:
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / weights.url.rsplit("/", 1)[-1])


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv(OFFLINE_ENV, "1")
    return tmp_path


def test_names_and_files_are_told_apart():
    assert all(is_named(s) for s in (IMAGENET, "IMAGENET1K_V1", "ResNet50_Weights.IMAGENET1K_V2"))
    assert not any(is_named(s) for s in ("resnet50.pth", "/w/vgg16.pth", "weights/IMAGENET1K_V1", "r50.pt"))


def test_imagenet_resnet50_loads_the_cached_file(torch_home):
    torch.manual_seed(0)
    reference = resnet50(weights=None)
    place_in_cache(torch_home, ResNet50_Weights.IMAGENET1K_V1, reference)
    backbone = ResNet(depth=50, outputs=["c5"], weights=IMAGENET)
    assert torch.equal(backbone.stem[0].weight, reference.conv1.weight)
    assert torch.equal(backbone.stages[3][2].conv3.weight, reference.layer4[2].conv3.weight)
    by_enum = ResNet(depth=50, outputs=["c5"], weights="ResNet50_Weights.IMAGENET1K_V1")
    assert torch.equal(by_enum.stages[0][0].conv1.weight, reference.layer1[0].conv1.weight)


def test_imagenet_vgg16_fills_fc6_fc7_by_decimation(torch_home):
    torch.manual_seed(0)
    reference = vgg16(weights=None)
    place_in_cache(torch_home, VGG16_Weights.IMAGENET1K_V1, reference)
    backbone = VGG16Reduced(weights=IMAGENET)
    assert torch.equal(backbone.to_conv4_3[0].weight, reference.features[0].weight)
    assert torch.equal(backbone.to_fc7[3].bias, reference.classifier[3].bias[::4])


@pytest.mark.slow  # two more 138M-parameter VGGs: 5 s
def test_the_features_only_vgg16_weights_leave_fc6_fc7_initialised(torch_home):
    features_only = vgg16(weights=None)
    with torch.no_grad():
        features_only.classifier[0].weight.fill_(float("nan"))  # as torchvision's IMAGENET1K_FEATURES file
    place_in_cache(torch_home, VGG16_Weights.IMAGENET1K_FEATURES, features_only)
    backbone = VGG16Reduced(weights="IMAGENET1K_FEATURES")
    assert torch.equal(backbone.to_conv5_3[-2].weight, features_only.features[28].weight)
    assert torch.isfinite(backbone.to_fc7[1].weight).all()


def test_offline_and_not_cached_says_which_file_goes_in_which_folder(torch_home):
    with pytest.raises(FileNotFoundError) as error:
        ResNet(depth=50, weights=IMAGENET)
    message = str(error.value)
    assert "resnet50-0676ba61.pth" in message and str(torch_home / "hub" / "checkpoints") in message
    assert "\n" not in message


def test_another_models_weights_are_refused_with_the_choices(torch_home):
    with pytest.raises(ValueError, match=r"not resnet50's.*ResNet50_Weights.IMAGENET1K_V2"):
        ResNet(depth=50, weights="VGG16_Weights.IMAGENET1K_V1")


def test_a_preflight_build_checks_the_name_without_loading(torch_home):
    with torch.device("meta"):
        with pytest.raises(FileNotFoundError, match="not cached"):
            ResNet(depth=50, weights=IMAGENET)
        with pytest.raises(ValueError, match="not resnet50's"):
            ResNet(depth=50, weights="IMAGENET1K_FEATURES")
