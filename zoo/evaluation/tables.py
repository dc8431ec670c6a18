"""Plain-text per-class tables, printed at the end of training and evaluation."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

_HEADERS = {"num_gt": "objects", "num_det": "detections"}


def format_per_class_table(
    per_class: Mapping[str, Mapping[str, float]], columns: Sequence[str], metric: str, value: float,
    counts: Sequence[str] = (),
) -> str:
    """One row per class, then a summary row (counts, ``num_*`` and the ``counts`` columns, are
    summed; metrics averaged over the classes where they are defined), then the headline metric.
    NaN prints as ``-``."""
    rows = [[name, *(stats[c] for c in columns)] for name, stats in per_class.items()]
    summary = []
    for c in columns:
        values = np.array([stats[c] for stats in per_class.values()], dtype=float)
        defined = values[~np.isnan(values)]
        if c.startswith("num_") or c in counts:
            summary.append(int(defined.sum()))
        else:
            summary.append(float(defined.mean()) if len(defined) else math.nan)
    cells = [["class", *(_HEADERS.get(c, c) for c in columns)]]
    label = "all" if all(c.startswith("num_") or c in counts for c in columns) else "mean"
    cells += [[_cell(v) for v in row] for row in [*rows, [label, *summary]]]

    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(s.ljust(w) if i == 0 else s.rjust(w) for i, (s, w) in enumerate(zip(row, widths)))
             for row in cells]
    rule = "-" * len(lines[0])
    return "\n".join([lines[0], rule, *lines[1:-1], rule, lines[-1], f"{metric} = {_cell(value)}"])


def _cell(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    value = float(value)  # type: ignore[arg-type]
    return "-" if math.isnan(value) else f"{value:.4f}"
