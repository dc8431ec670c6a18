import pytest
import torch
from torch import nn

from tests.conftest import TINY
from zoo.engine.stages import StageSchedule
from zoo.engine.trainer import Trainer


class _Snapshots:
    """Records, per step, which top-level modules' parameters and BatchNorm statistics changed."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.last = self._state()
        self.changed: list[tuple[str, set[str], set[str]]] = []
        self.next_lr: dict[int, float] = {}

    def _state(self):
        return {k: v.detach().clone() for k, v in self.model.state_dict().items() if v.is_floating_point()}

    def after_step(self, trainer):
        now = self._state()
        params = {n for n, _ in self.model.named_parameters()}
        moved = {k.split(".")[0] for k in now if k in params and not torch.equal(now[k], self.last[k])}
        stats = {k.split(".")[0] for k in now if k.endswith("running_mean") and not torch.equal(now[k], self.last[k])}
        self.changed.append((trainer.stages.current.name, moved, stats))
        self.last = now
        self.next_lr[trainer.step] = trainer.optimizer.param_groups[0]["lr"]  # the lr of 0-based step `step`


def test_four_step_schedule_trains_only_what_each_stage_names(compose_cfg, tmp_path):
    cfg = compose_cfg(*TINY, "model=faster_rcnn_lite", "model.input_size=128", "trainer.max_iters=6",
                      "trainer.eval_every=0", "trainer/stages=four_step", "trainer.schedule.warmup_iters=0")
    trainer = Trainer(cfg, tmp_path)
    hook = _Snapshots(trainer.model)
    trainer.hooks.append(hook)
    trainer.fit()
    stages = [name for name, _, _ in hook.changed]
    assert stages == ["rpn", "rpn", "detector", "rpn_finetune", "rpn_finetune", "detector_finetune"]
    expected = {"rpn": {"backbone", "rpn"}, "detector": {"backbone", "roi_head"}, "rpn_finetune": {"rpn"},
                "detector_finetune": {"roi_head"}}
    for name, moved, stats in hook.changed:
        assert moved == expected[name], name
        assert stats <= expected[name], name  # frozen modules keep their BatchNorm statistics
    logged = (tmp_path / "metrics.jsonl").read_text()
    assert "rpn/obj" in logged and "roi/cls" in logged
    # Every stage replays the cosine schedule: full lr at its first step (0-based 2, 3 and 5).
    base = cfg.trainer.optimizer.lr
    assert [round(hook.next_lr[s] / base, 6) for s in (1, 2, 3, 4, 5)] == [0.505, 1.0, 1.0, 0.505, 1.0]


@pytest.mark.parametrize("stages,message", [
    ([{"name": "a", "fraction": 0.5, "train": ["rpn"], "losses": ["rpn/"]}], "must sum to 1"),
    ([{"name": "a", "fraction": 1.0, "train": ["rpm"], "losses": ["rpn/"]}], r"modules \['rpm'\]"),
    ([{"name": "a", "fraction": 1.0, "train": ["rpn"]}], "needs exactly the keys")])
def test_bad_stages_are_explained(stages, message):
    model = nn.Module()
    model.rpn = nn.Linear(1, 1)
    with pytest.raises(ValueError, match=message):
        StageSchedule(stages, model)


class _TwoStageParts(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone, self.neck, self.rpn, self.roi_head = (nn.Linear(1, 1) for _ in range(4))


def test_paper_four_step_runs_the_authors_step_lengths_and_the_cpu_protocol_splits_its_budget(compose_cfg):
    paper = compose_cfg("experiment=faster_rcnn_training_four_step")
    steps = StageSchedule(paper.trainer.stages, _TwoStageParts())._bounds(paper.trainer.max_iters)
    assert [end - start for start, end in steps] == [80000, 40000, 80000, 40000]  # py-faster-rcnn's solvers
    assert compose_cfg("experiment=faster_rcnn_training_joint").trainer.max_iters == 80000
    cpu = compose_cfg("experiment=faster_rcnn_training_four_step", "model=faster_rcnn_lite", "data=bccd",
                      "trainer=cpu_bccd")
    assert [s.name for s in StageSchedule(cpu.trainer.stages, _TwoStageParts()).stages][-1] == "detector_finetune"
    assert cpu.trainer.max_iters is None and cpu.trainer.max_epochs == 160
