import pytest
import torch

from zoo.models.backbones.hourglass import Hourglass
from zoo.registry import BACKBONES

SMALL = {"stacks": 2, "dims": (16, 16, 24, 32), "modules": (1, 1, 1, 2), "stem_channels": 16, "cnv_dim": 32}


def test_paper_defaults_have_hourglass_104_size_and_declare_stride_4_outputs():
    net = Hourglass().eval()
    n_params = sum(p.numel() for p in net.parameters())
    # CornerNet (backbone + corner heads) is ~201M; the backbone alone is 187,700,352.
    assert n_params == 187_700_352
    assert net.out_channels == [256, 256] and net.strides == [4, 4]
    with torch.no_grad():
        outs = net(torch.zeros(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, 256, 16, 16)] * 2


@pytest.mark.parametrize("size", [(96, 128), (100, 124)])
def test_small_config_returns_one_stride_4_map_per_stack_for_sizes_divisible_by_4(size):
    net = Hourglass(**SMALL).eval()
    with torch.no_grad():
        outs = net(torch.zeros(1, 3, *size))
    expected = (1, 32, size[0] // 4, size[1] // 4)
    assert [tuple(o.shape) for o in outs] == [expected] * 2
    assert net.out_channels == [32, 32] and net.strides == [4, 4]


def test_gradient_reaches_the_stem_from_the_last_stack():
    net = Hourglass(**SMALL)
    outs = net(torch.randn(2, 3, 32, 32))
    outs[-1].sum().backward()
    stem_conv = net.stem[0][0].weight
    assert stem_conv.grad is not None and stem_conv.grad.abs().sum() > 0


@pytest.mark.parametrize("kwargs,message", [
    ({"stacks": 0}, r"hourglass: stacks must be >= 1, got 0"),
    ({"dims": (16, 16, 24), "modules": (1, 1)}, r"hourglass: dims \[16, 16, 24\] and modules \[1, 1\] differ"),
    ({"dims": (16,), "modules": (1,)}, r"hourglass: dims \[16\] needs at least 2"),
    ({"dims": (16, 16), "modules": (1, 0)}, r"hourglass: .*must all be positive"),
])
def test_bad_settings_are_explained(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Hourglass(**kwargs)


def test_builds_through_the_registry():
    net = BACKBONES.build({"type": "hourglass", **SMALL, "stacks": 1})
    assert isinstance(net, Hourglass)
    assert net.out_channels == [32] and net.strides == [4]
    assert len(net.merge_blocks) == 0
    with torch.no_grad():
        outs = net.eval()(torch.zeros(1, 3, 32, 32))
    assert len(outs) == 1 and tuple(outs[0].shape) == (1, 32, 8, 8)
