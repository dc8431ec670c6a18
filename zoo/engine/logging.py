"""Run logs: one JSON line per log step in metrics.jsonl, and TensorBoard scalars."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zoo.utils.files import write_text_atomically


class RunLogger:
    """``resumed_at``: the step a resumed run continues from. The lines and scalars an interrupted run logged past
    it are dropped: the steps after it are trained (and logged) again."""

    def __init__(self, run_dir: str | Path, enabled: bool = True, tensorboard: bool = True, resumed_at: int = 0):
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.jsonl"
        self._tb = None
        if enabled and resumed_at and self.path.is_file():
            kept = [line for line in self.path.read_text().splitlines(keepends=True) if _step(line) <= resumed_at]
            write_text_atomically(self.path, "".join(kept))
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"), purge_step=resumed_at or None)

    def log(self, step: int, values: dict[str, Any], kind: str = "train") -> None:
        if not self.enabled:
            return
        flat = {k: v for k, v in values.items() if isinstance(v, (int, float))}
        with self.path.open("a") as f:
            f.write(json.dumps({"kind": kind, "step": step, **flat}) + "\n")
        if self._tb is not None:
            for key, value in flat.items():
                self._tb.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _step(line: str) -> float:
    try:
        return json.loads(line).get("step", 0)
    except ValueError:  # a line cut short by a kill: dropped with the replayed ones
        return float("inf")
