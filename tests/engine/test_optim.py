import pytest
import torch
from torch import nn

from zoo.engine.optim import build_optimizer
from zoo.registry import ConfigError


def _model() -> nn.Module:
    torch.manual_seed(0)  # no conv bias before the norm: its gradient is rounding noise, which Adam would amplify
    return nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))


def _step(model: nn.Module, cfg: dict) -> list[torch.Tensor]:
    model(torch.ones(2, 3, 5, 5))  # materialise the lazy layer before the optimizer sees it
    optimizer = build_optimizer(model, cfg)
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(2, 3, 5, 5, generator=torch.Generator().manual_seed(1))).square().sum().backward()
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("kind", ["sgd", "adam", "adamw"])
def test_fused_by_default_and_same_update_as_the_loop(kind):
    cfg = {"type": kind, "lr": 0.01, "weight_decay": 0.1}
    model = _model()
    model(torch.ones(2, 3, 5, 5))
    assert build_optimizer(model, cfg).defaults["fused"] is True
    fused, looped = _step(_model(), cfg), _step(_model(), {**cfg, "fused": False})
    for a, b in zip(fused, looped):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_explicit_foreach_is_kept_and_norms_and_biases_skip_decay():
    model = _model()
    model(torch.ones(2, 3, 5, 5))
    optimizer = build_optimizer(model, {"type": "adamw", "lr": 0.1, "weight_decay": 0.05, "foreach": True})
    assert not optimizer.defaults.get("fused") and optimizer.defaults["foreach"] is True
    decay, no_decay = optimizer.param_groups
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim <= 1 for p in no_decay["params"])
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.05, 0.0)


def test_unknown_optimizer_and_argument_are_named():
    with pytest.raises(ConfigError, match="'lbfgs' is unknown"):
        build_optimizer(_model(), {"type": "lbfgs"})
    with pytest.raises(ConfigError, match=r"trainer.optimizer \(sgd\)"):
        build_optimizer(nn.Linear(2, 2), {"type": "sgd", "lr": 0.1, "mommentum": 0.9})


def test_bias_lr_factor_gives_biases_their_own_rate_through_the_schedule():
    from zoo.engine.optim import build_scheduler

    model = _model()
    model(torch.ones(2, 3, 5, 5))
    optimizer = build_optimizer(model, {"type": "sgd", "lr": 0.01, "weight_decay": 5e-4, "bias_lr_factor": 2})
    decay, norms, biases = optimizer.param_groups
    assert [p.shape for p in biases["params"]] == [torch.Size([4]), torch.Size([2])]  # BN's and the linear's
    assert [p.shape for p in norms["params"]] == [torch.Size([4])]  # BN's weight
    assert (biases["lr"], biases["weight_decay"], norms["lr"]) == (0.02, 0.0, 0.01)
    scheduler = build_scheduler(optimizer, 10, {"type": "multistep", "milestones": [0.5], "gamma": 0.1})
    for _ in range(6):
        optimizer.step()
        scheduler.step()
    assert biases["lr"] == pytest.approx(0.002) and decay["lr"] == pytest.approx(0.001)
    assert len(build_optimizer(model, {"type": "sgd", "lr": 0.01}).param_groups) == 2  # factor 1: as before
    with pytest.raises(ConfigError, match="bias_lr_factor"):
        build_optimizer(model, {"type": "sgd", "lr": 0.01, "bias_lr_factor": 0})
