"""Each corner pool equals a brute-force maximum over its half-line, values and gradients."""
import pytest
import torch

from zoo.ops.corner_pool import bottom_pool, left_pool, right_pool, top_pool


def brute(x: torch.Tensor, which: str) -> torch.Tensor:
    """Location by location, the maximum over the stated slice (what the paper defines)."""
    h, w = x.shape[-2:]
    out = torch.empty_like(x)
    for i in range(h):
        for j in range(w):
            part = {"top": x[..., i:, j], "left": x[..., i, j:],
                    "bottom": x[..., : i + 1, j], "right": x[..., i, : j + 1]}[which]
            out[..., i, j] = part.max(dim=-1).values
    return out


@pytest.mark.parametrize("pool,which", [(top_pool, "top"), (left_pool, "left"),
                                        (bottom_pool, "bottom"), (right_pool, "right")])
def test_pool_matches_brute_force_forward_and_gradient(pool, which):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 7, dtype=torch.float64)  # continuous values: no ties, one argmax each
    weights = torch.randn(2, 3, 5, 7, dtype=torch.float64)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    fast, slow = pool(a), brute(b, which)
    assert torch.equal(fast, slow)
    (fast * weights).sum().backward()
    (slow * weights).sum().backward()
    assert torch.allclose(a.grad, b.grad)
    assert torch.autograd.gradcheck(pool, (x[:1, :1].clone().requires_grad_(),))


def test_top_left_pools_see_an_edge_from_its_corner():
    x = torch.zeros(1, 1, 6, 6)
    x[0, 0, 4, 1:5] = 1.0  # a horizontal edge on row 4, columns 1..4
    assert top_pool(x)[0, 0, :5, 1:5].eq(1).all() and top_pool(x)[0, 0, 5].eq(0).all()
    assert left_pool(x)[0, 0, 4, :5].eq(1).all() and left_pool(x)[0, 0, 4, 5] == 0
