import torch

from zoo.task.coders import DeltaXYWHCoder


def _boxes(n, seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 200
    wh = torch.rand(n, 2, generator=g) * 90 + 10  # size ratios stay inside the decode clamp
    return torch.cat([xy, xy + wh], dim=1)


def test_round_trip_recovers_boxes():
    coder = DeltaXYWHCoder((0.1, 0.2))
    boxes, anchors = _boxes(500, 0), _boxes(500, 1)
    assert torch.allclose(coder.decode(coder.encode(boxes, anchors), anchors), boxes, atol=1e-3)


def test_round_trip_batched_shapes():
    coder = DeltaXYWHCoder((0.1, 0.1, 0.2, 0.2))
    boxes, anchors = _boxes(24, 2).view(2, 12, 4), _boxes(12, 3)
    decoded = coder.decode(coder.encode(boxes, anchors), anchors)
    assert decoded.shape == (2, 12, 4) and torch.allclose(decoded, boxes, atol=1e-3)


def test_variances_scale_the_targets():
    anchor = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    box = torch.tensor([[1.0, 0.0, 11.0, 20.0]])
    deltas = DeltaXYWHCoder((0.1, 0.2)).encode(box, anchor)
    # centre x moves by 1 = 0.1 anchor widths -> 0.1 / 0.1; height doubles -> log 2 / 0.2.
    assert torch.allclose(deltas, torch.tensor([[1.0, 5.0, 0.0, torch.log(torch.tensor(2.0)) / 0.2]]))


def test_decode_clamps_huge_size_deltas_both_ways():
    """The log size ratio is clamped at +-log(1000/16): a box grows at most 62.5x and, symmetrically, shrinks at
    most 62.5x (a refined anchor that RefineDet's ODM decodes again must not collapse to nothing)."""
    coder = DeltaXYWHCoder((0.1, 0.2))
    grown = coder.decode(torch.tensor([[0.0, 0.0, 1e4, 1e4]]), torch.tensor([[0.0, 0.0, 10.0, 10.0]]))
    assert torch.allclose(grown, torch.tensor([[-307.5, -307.5, 317.5, 317.5]]))
    shrunk = coder.decode(torch.tensor([[0.0, 0.0, -1e4, -1e4]]), torch.tensor([[0.0, 0.0, 32.0, 32.0]]))
    assert torch.allclose(shrunk, torch.tensor([[15.744, 15.744, 16.256, 16.256]]))
