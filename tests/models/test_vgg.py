import pytest
import torch
from torchvision.models import vgg16

from zoo.models.backbones.vgg import VGG16Reduced


def test_frozen_blocks_fix_conv1_and_conv2_only():
    net = VGG16Reduced(sources=["conv5_3"], frozen_blocks=2)
    trainable = [name for name, p in net.named_parameters() if p.requires_grad]
    frozen = [name for name, p in net.named_parameters() if not p.requires_grad]
    # conv1_1, conv1_2, conv2_1, conv2_2 (weight and bias each); conv3_1 (features index 10) learns
    assert frozen == [f"to_conv4_3.{i}.{k}" for i in (0, 2, 5, 7) for k in ("weight", "bias")]
    assert "to_conv4_3.10.weight" in trainable and all(n.startswith(("to_conv4_3", "to_conv5_3")) for n in trainable)


def test_frozen_blocks_out_of_range_is_explained():
    with pytest.raises(ValueError, match="frozen_blocks must be 0..2, got 3"):
        VGG16Reduced(frozen_blocks=3)


def test_imagenet_fc_layers_are_subsampled_into_fc6_and_fc7(tmp_path):
    torch.manual_seed(0)
    full = vgg16(weights=None)
    path = tmp_path / "vgg16.pth"
    torch.save(full.state_dict(), path)
    net = VGG16Reduced(sources=["conv4_3", "fc7"], weights=str(path))
    fc6, fc7 = net.to_fc7[1], net.to_fc7[3]
    w6 = full.classifier[0].weight.view(4096, 512, 7, 7)
    # unit 4k of the reduced layer is unit 4k of ImageNet's; taps (0, 3, 6) of the 7x7 kernel
    assert torch.equal(fc6.weight[5, :, 1, 2], w6[20, :, 3, 6])
    assert torch.equal(fc6.bias, full.classifier[0].bias[::4])
    assert torch.equal(fc7.weight[7, 9, 0, 0], full.classifier[3].weight[28, 36])
    assert torch.equal(fc7.bias, full.classifier[3].bias[::4])
    assert torch.equal(net.to_conv4_3[0].weight, full.features[0].weight)
