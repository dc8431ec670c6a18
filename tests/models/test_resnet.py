import pytest
import torch

from zoo.models.backbones.resnet import ResNet


@pytest.mark.parametrize("depth,channels", [(18, [64, 128, 256, 512]), (50, [256, 512, 1024, 2048])])
def test_declared_channels_and_strides_match_the_outputs(depth, channels):
    net = ResNet(depth=depth, outputs=["c2", "c3", "c4", "c5"]).eval()
    with torch.no_grad():
        outs = net(torch.zeros(1, 3, 64, 64))
    assert net.out_channels == channels and net.strides == [4, 8, 16, 32]
    assert [o.shape[1] for o in outs] == channels and [64 // o.shape[-1] for o in outs] == net.strides


def test_unused_deeper_stages_are_not_built_and_frozen_stages_get_no_gradient():
    net = ResNet(depth=18, outputs=["c3"], frozen_stages=1)
    assert len(net.stages) == 2
    assert not any(p.requires_grad for p in net.stem.parameters())
    assert not any(p.requires_grad for p in net.stages[0].parameters())
    assert all(p.requires_grad for p in net.stages[1].parameters())


@pytest.mark.parametrize("kwargs,message", [({"depth": 42}, "depth must be one of"),
                                            ({"outputs": ["c6"]}, "non-empty subset"),
                                            ({"frozen_stages": 5}, "frozen_stages must be 0..4")])
def test_bad_settings_are_explained(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ResNet(**kwargs)
