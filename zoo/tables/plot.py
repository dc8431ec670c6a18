"""A paper table drawn: the paper's figure and ours per row, or a speed-accuracy scatter for a table with times."""
from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from zoo.tables.rows import Row, rows_by_timing_machine


def label_points_apart(ax, points: Sequence[tuple[str, float, float]]) -> list:
    """Names each scatter point beside it, moving a name down until it covers no name placed before it and no
    point (the zoo's models cluster: four of them within 25 ms and 1.5 points of one another). Hand-written:
    matplotlib places annotations where they are told, overlapping or not. Returns the names' boxes (pixels)."""
    from matplotlib.transforms import Bbox

    ax.figure.draw_without_rendering()  # the final layout and axis limits, so that boxes measured now stay true
    renderer = ax.figure.canvas.get_renderer()
    to_points = 72 / ax.figure.dpi
    marks = {name: Bbox.from_bounds(*(ax.transData.transform((x, y)) - 7), 14, 14) for name, x, y in points}
    placed = []
    for name, x, y in sorted(points, key=lambda p: -p[2]):  # from the top, so that names move down into free room
        offset = 4.0
        others = placed + [mark for other, mark in marks.items() if other != name]  # the name starts right of its own
        for _ in range(3 * len(points)):
            label = ax.annotate(name, (x, y), textcoords="offset points", xytext=(6, offset), fontsize="small")
            box = label.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in others):
                break
            label.remove()
            offset -= box.height * to_points / 2
        else:  # no free room within reach: keep it at its first place
            label = ax.annotate(name, (x, y), textcoords="offset points", xytext=(6, 4), fontsize="small")
            box = label.get_window_extent(renderer)
        placed.append(box)
    return placed


def plot_table(rows: Sequence[Row], title: str, metric: str, path: str, paper_bars: bool = True) -> None:
    """Paper and ours side by side per row (ours alone when the paper's metric differs); or, with
    times, a speed-accuracy scatter."""
    fig = Figure(figsize=(1.8 + 1.4 * len(rows), 4.0), layout="constrained")
    title = "\n".join(textwrap.wrap(title, width=int(14 + 12 * len(rows))))  # a long title wraps, not cut off
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    if any(r.ms is not None for r in rows):
        by_machine = rows_by_timing_machine(rows)
        for (name, names), marker in zip(by_machine.items(), "osD^v<>p"):  # one marker per timing machine
            timed = [r for r in rows if r.experiment in names]
            ax.errorbar([r.ms for r in timed], [r.mean for r in timed],
                        yerr=[0 if math.isnan(r.std) else r.std for r in timed], fmt=marker, capsize=3,
                        label=textwrap.fill(name.removeprefix("machine: "), 40))
        if len(by_machine) > 1:
            ax.legend(title="timed on", fontsize="x-small", title_fontsize="x-small")
        ax.set(xlabel="ms / image (batch 1)", ylabel=f"{metric} (%)", title=title)
        label_points_apart(ax, [(r.experiment, r.ms, r.mean) for r in rows if r.ms is not None])
    else:
        x = list(range(len(rows)))
        if paper_bars:  # rows without a figure get no bar; unverified figures are hatched
            with_figure = [(i, r) for i, r in zip(x, rows) if r.paper is not None]
            ax.bar([i - 0.2 for i, _ in with_figure], [r.paper for _, r in with_figure], 0.4, label="paper",
                   hatch=[None if r.verified else "//" for _, r in with_figure])
        ax.bar([i + 0.2 for i in x], [r.mean for r in rows], 0.4,
               yerr=[0 if math.isnan(r.std) else r.std for r in rows], capsize=3, label="ours")
        ax.set_xticks(x, [r.experiment for r in rows], rotation=25, ha="right", fontsize="small")
        ax.set(ylabel=f"{metric} (%)", title=title)
        handles, _ = ax.get_legend_handles_labels()
        if paper_bars and any(r.paper is not None and not r.verified for r in rows):
            handles.append(Patch(facecolor="C0", edgecolor="black", hatch="//", label="paper, unverified"))
        ax.legend(handles=handles)
    fig.savefig(path, dpi=80)
