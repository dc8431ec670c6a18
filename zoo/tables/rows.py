"""A paper table's row: its settings, the paper's figure and ours per seed, with what produced ours."""
from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from zoo.utils.provenance import machine


@dataclass
class Row:
    experiment: str  # the experiment file, or the model config for a table of models
    settings: str
    paper: float | None
    verified: bool
    runs: list[float]  # our figure per seed, in percent
    ms: float | None = None  # seed 0's inference time per image, for tables with ``speed: true``
    train_minutes: float | None = None  # mean over seeds, for tables with ``train_time: true``
    step_verified: bool = False  # the paper's change from the row before is confirmed though a figure is not
    timed_on: str | None = None  # the machine that timed ``ms``
    also_runs: list[float] = field(default_factory=list)  # per seed, scored with the table's ``also_tta``
    codes: list[str] = field(default_factory=list)  # per seed, the code it trained with (zoo.utils.provenance.code_version)
    # Config keys in which an archived run of the row differs from the config the row composes today: its figures
    # are a record of that config (shown marked stale), until the row is trained again.
    stale: list[str] = field(default_factory=list)
    proposal_ms: float | None = None  # seed 0's proposals per test image (given proposals), for ``speed: true``
    # The paper's own speed figures, where its table gives them (the row's ``paper:`` node): training hours, test
    # seconds per image (proposals excluded where they are given) and the proposals' seconds per image.
    paper_train_hours: float | None = None
    paper_test_seconds: float | None = None
    paper_proposal_seconds: float | None = None

    @property
    def mean(self) -> float:
        return statistics.fmean(self.runs) if self.runs else math.nan

    @property
    def std(self) -> float:
        return statistics.stdev(self.runs) if len(self.runs) > 1 else math.nan


def rows_by_timing_machine(rows: Sequence[Row]) -> dict[str, list[str]]:
    """The timed rows' names under the machine that timed them (this one where a row's timing names none), so
    that times from two machines are never read side by side unmarked."""
    grouped: dict[str, list[str]] = {}
    for row in rows:
        if row.ms is not None:
            grouped.setdefault(row.timed_on or machine(torch.get_num_threads()), []).append(row.experiment)
    return grouped
