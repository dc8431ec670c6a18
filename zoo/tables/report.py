"""A paper table written out: our mean +- std beside the paper's figure per row, each row's step from the row it is
compared with, whether the paper's ordering holds, as table.md, table.json and a bar chart (table.png)."""
from __future__ import annotations

import datetime
import json
import math
import os
import statistics
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from zoo.utils.files import write_text_atomically
from zoo.tables.runs import table_tta
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

    @property
    def mean(self) -> float:
        return statistics.fmean(self.runs) if self.runs else math.nan

    @property
    def std(self) -> float:
        return statistics.stdev(self.runs) if len(self.runs) > 1 else math.nan


def compared_with(rows: Sequence[Row], reference: str | None = None) -> list[Row | None]:
    """The row each row's change is measured from: ``reference`` (itself excepted) or the previous row."""
    if reference is None:
        return [None, *rows[:-1]]
    base = next((r for r in rows if r.experiment == reference), None)
    return [None if r is base else base for r in rows]


PAPER_TIE = 0.5  # points: VOC mAP moves about +-0.5-1.0 between identical runs (../shared/PAPERS.md)


def ordering_holds(rows: Sequence[Row], reference: str | None = None) -> list[str | None]:
    """Per row: 'yes' or 'no', whether our change from the row it is compared with has the sign of the
    paper's; 'within noise' when our change is under two standard errors of the difference of the two
    means (sample std over sqrt(seeds)); '(1 seed)' added when a row has one run, so no spread to judge
    by; 'paper tie' when the paper's own change is under PAPER_TIE; None where a figure is missing;
    ' (unverified)' added where the paper's change rests on a figure not checked against the paper."""
    out: list[str | None] = []
    for row, base in zip(rows, compared_with(rows, reference)):
        if base is None or row.paper is None or base.paper is None or not row.runs or not base.runs:
            out.append(None)
            continue
        paper, ours = row.paper - base.paper, row.mean - base.mean
        flag = "" if _paper_step_verified(row, base) else " (unverified)"
        if abs(paper) < PAPER_TIE - 1e-9:
            out.append("paper tie" + flag)
            continue
        sign = "yes" if (paper > 0) == (ours > 0) else "no"
        if len(row.runs) < 2 or len(base.runs) < 2:
            out.append(f"{sign} (1 seed)" + flag)
            continue
        noise = 2 * math.sqrt(row.std ** 2 / len(row.runs) + base.std ** 2 / len(base.runs))
        out.append(("within noise" if abs(ours) < noise else sign) + flag)
    return out


def pairs_in_papers_order(rows: Sequence[Row]) -> tuple[int, int]:
    """(agreeing, compared): over every pair of rows with a paper figure and runs, whose paper figures differ
    by PAPER_TIE or more, how many our means order the same way: the ordering across the whole table, where
    the steps compare each row with one other only."""
    scored = [r for r in rows if r.paper is not None and r.runs]
    pairs = [(a, b) for i, a in enumerate(scored) for b in scored[i + 1:] if abs(a.paper - b.paper) >= PAPER_TIE - 1e-9]
    return sum((a.paper > b.paper) == (a.mean > b.mean) for a, b in pairs), len(pairs)


def _paper_step_verified(row: Row, base: Row) -> bool:
    return (row.verified and base.verified) or row.step_verified


def _step(row: Row, base: Row | None, value: Callable[[Row], float | None], flag_unverified: bool = False) -> str:
    if base is None or value(row) is None or value(base) is None:
        return "-"
    unverified = flag_unverified and not _paper_step_verified(row, base)
    return f"{value(row) - value(base):+.2f}" + (" (unverified)" if unverified else "")


def write_table(rows: Sequence[Row], table: Mapping[str, Any], protocol: str, seeds: int, out_dir: str | Path,
                command: str) -> dict[str, str]:
    """table.md, table.json and table.png in ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    reference = table.get("reference")
    holds = ordering_holds(rows, reference)
    of_models = table.get("rows_are", "experiments") == "models"  # different models: no steps between rows
    bases = [None] * len(rows) if of_models else compared_with(rows, reference)
    metric = table["protocols"][protocol].get("metric") or table["metric"]
    same_metric = metric == table["metric"]  # else the paper's figures are in another metric (coco_ap vs voc07)
    header = f"protocol `{protocol}`, {seeds} seed(s), metric `{metric}` in percent; command: `{command}`"
    written = f"{machine(torch.get_num_threads())}, {os.cpu_count()} cores"
    header += f"\n\nWritten {datetime.date.today().isoformat()} on {written}."
    header += _code_line(rows)
    tta = table_tta(table, protocol)
    if tta is not None:
        header += f"\n\nEvery row scored with the test-time augmentation `tta={tta}` (as `zoo-eval ... tta={tta}`)."
    finished = sum(len(r.runs) for r in rows)
    if finished < seeds * len(rows):
        header += (f"\n\n**Partial: {finished} of {seeds * len(rows)} runs finished**; a row's figure is the mean "
                   "of its finished seeds.")
    extras = [(title, name) for title, name in (("ms / image", "ms"), ("train min", "train_minutes"))
              if any(getattr(r, name) is not None for r in rows)]
    also_tta = table.get("also_tta") if any(r.also_runs for r in rows) else None
    also_titles = [f"with `tta={also_tta}`", f"`tta={also_tta}` minus plain, per seed"] if also_tta else []
    versus = f"`{reference}`" if reference else "the row above"
    lines = [f"# {table['title']}", "", header, "",
             "| row | settings | paper | ours (mean ± sample std) | paper step | our step | paper's ordering holds |"
             + "".join(f" {title} |" for title, _ in extras) + "".join(f" {title} |" for title in also_titles),
             "|---|---|---|---|---|---|---|" + "---|" * (len(extras) + len(also_titles))]
    for row, base, hold in zip(rows, bases, holds):
        paper = "-" if row.paper is None else f"{row.paper:.1f}" + ("" if row.verified else " (unverified)")
        ours = f"{row.mean:.2f} ± {row.std:.2f}" if len(row.runs) > 1 else f"{row.mean:.2f}"
        ours = "not finished" if not row.runs else ours + (f" ({len(row.runs)} of {seeds} seeds)"
                                                             if len(row.runs) < seeds else "")
        paper_step = _step(row, base, lambda r: r.paper if same_metric else None, flag_unverified=True)
        our_step = _step(row, base, lambda r: r.mean if r.runs else None)
        values = [getattr(row, name) for _, name in extras]
        lines.append(f"| {row.experiment} | {row.settings} | {paper} | {ours} | {paper_step} | {our_step} | "
                     f"{hold or '-'} |" + "".join(" - |" if v is None else f" {v:.1f} |" for v in values)
                     + ("".join(f" {cell} |" for cell in _also_cells(row)) if also_titles else ""))
    if not of_models:
        lines += ["", (f"Steps are each row's change from {versus}; the ordering holds when our step has the sign of "
                  "the paper's, and is within noise when our step is under two standard errors of the difference (sample std "
                  f"over the seeds, n - 1 in the denominator); a paper step under {PAPER_TIE} points is a tie, "
                  "within the spread between identical runs.")]
        agree, compared = pairs_in_papers_order(rows)
        if compared:
            lines += ["", (f"Across the whole table, {agree} of {compared} pairs of rows are in the paper's order "
                           f"(pairs whose paper figures differ by {PAPER_TIE} points or more, by our means).")]
    if protocol == "paper" and same_metric:
        lines += ["", "Ours minus the paper's: " + ", ".join(
            f"{r.experiment} {r.mean - r.paper:+.2f}" for r in rows if r.paper is not None and r.runs) + "."]
    if not same_metric:
        lines += ["", (f"The paper's figures are {table['metric']}, ours {metric}: its steps are not shown, and the "
                      "ordering compares the signs of the changes only.")]
    if also_titles:
        lines += ["", (f"`tta={also_tta}`: each run's checkpoint also scored as `zoo-eval ... tta={also_tta}`; the last "
                  "column is the mean ± sample std of its change from the plain figure, seed by seed.")]
    if any(name == "ms" for _, name in extras):
        by_machine = rows_by_timing_machine(rows)
        if len(by_machine) > 1:
            machines = "; ".join(f"{name} ({', '.join(names)})" for name, names in by_machine.items())
            machines += " (rows timed on different machines: their times compare only within a machine)"
        else:
            machines = next(iter(by_machine), machine(torch.get_num_threads()))
        lines += ["", ("ms / image: seed 0's checkpoint, batch 1, median over 20 test images at each model's own test "
                  f"input size (keep-ratio models see the image's aspect), timed when the run finished; {machines}.")]
    if any(name == "train_minutes" for _, name in extras):
        note = ("train min: each run's training wall clock (its periodic validation included; a resumed run counts "
                "its last process only), mean over seeds; other jobs on the machine lengthen it.")
        lines += ["", note]
    skipped = table["protocols"][protocol].get("skip") or []
    if skipped:
        lines += ["", f"Not run under `{protocol}` (the switch does not exist in its model): {', '.join(skipped)}."]
    if protocol != "paper":
        lines += ["", f"The paper's figures are on its own data; under `{protocol}` compare the steps, not the figures."]
    paths = {"md": str(out / "table.md"), "json": str(out / "table.json"), "png": str(out / "table.png")}
    write_text_atomically(paths["md"], "\n".join(lines) + "\n")  # a table is read while its runs still train
    write_text_atomically(paths["json"], json.dumps({
        "table": table["name"], "title": table["title"], "protocol": protocol, "seeds": seeds, "metric": metric,
        "command": command, "reference": reference, "finished_runs": finished, "tta": tta,
        "also_tta": table.get("also_tta"), "pairs_in_papers_order": None if of_models else pairs_in_papers_order(rows),
        "rows": [{**asdict(r), "mean": _finite(r.mean), "std": _finite(r.std), "ordering_holds": h}
                 for r, h in zip(rows, holds)]}, indent=2))
    _plot(rows, table["title"], metric, paths["png"], paper_bars=same_metric)
    return paths


def rows_by_timing_machine(rows: Sequence[Row]) -> dict[str, list[str]]:
    """The timed rows' names under the machine that timed them (this one where a row's timing names none), so
    that times from two machines are never read side by side unmarked."""
    grouped: dict[str, list[str]] = {}
    for row in rows:
        if row.ms is not None:
            grouped.setdefault(row.timed_on or machine(torch.get_num_threads()), []).append(row.experiment)
    return grouped


def _code_line(rows: Sequence[Row]) -> str:
    """Which code the runs trained with: one commit, or the rows of each when the table spans code changes."""
    rows_of: dict[str, list[str]] = {}
    for row in rows:
        for code in dict.fromkeys(row.codes):
            rows_of.setdefault(code, []).append(row.experiment)
    if not rows_of or list(rows_of) == ["not recorded"]:  # runs from before results.json recorded it
        return ""
    if len(rows_of) == 1:
        return f" Runs trained with code {_code(next(iter(rows_of)))}."
    return " Runs trained with different code: " + "; ".join(
        f"{_code(code)} ({', '.join(names)})" for code, names in rows_of.items()) + "."


def _code(code: str) -> str:
    return f"`{code}`" + (" (a copy of the code outside a git checkout)" if code == "unknown" else "")


def _also_cells(row: Row) -> list[str]:
    """The row's figure with the table's ``also_tta`` and its per-seed change from the plain figure."""
    if not row.also_runs:
        return ["-", "-"]
    changes = [a - p for a, p in zip(row.also_runs, row.runs)]

    def spread(values: list[float]) -> str:
        return f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""

    return [f"{statistics.fmean(row.also_runs):.2f}{spread(row.also_runs)}",
            f"{statistics.fmean(changes):+.2f}{spread(changes)}"]


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value  # NaN is not JSON


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


def _plot(rows: Sequence[Row], title: str, metric: str, path: str, paper_bars: bool = True) -> None:
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
