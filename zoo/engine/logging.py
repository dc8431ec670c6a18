"""Run logs: one JSON line per log step in metrics.jsonl, and TensorBoard scalars."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class RunLogger:
    def __init__(self, run_dir: str | Path, enabled: bool = True, tensorboard: bool = True):
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.jsonl"
        self._tb = None
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))

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
