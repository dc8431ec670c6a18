"""Precision-recall curves, one panel per class, in a single PNG.

Uses matplotlib's object API with the Agg canvas, never pyplot, so it neither needs a display nor
switches the process-wide backend under a user's notebook.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

Curve = tuple[str, np.ndarray, np.ndarray]  # (legend label, recall, precision)


def plot_pr_grid(curves: Mapping[str, Sequence[Curve]], path: str, title: str, max_cols: int = 4) -> str:
    """Draw ``{class_name: [curves]}`` as a grid of panels and save it to ``path``."""
    names = list(curves)
    cols = max(1, min(max_cols, len(names)))
    rows = max(1, math.ceil(len(names) / cols))
    fig = Figure(figsize=(3.2 * cols, 3.0 * rows + 0.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, name in zip(axes, names):
        for label, recall, precision in curves[name]:
            ax.plot(recall, precision, label=label)
        ax.set(title=name, xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision")
        ax.grid(alpha=0.3)
        if curves[name]:
            ax.legend(loc="lower left", fontsize="small")
    for ax in axes[len(names):]:
        ax.set_visible(False)
    fig.suptitle(title)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=80)
    return path
