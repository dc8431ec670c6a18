"""A paper table written out: our mean +- std beside the paper's figure per row, each row's step from the row it is
compared with, whether the paper's ordering holds, as table.md, table.json and a bar chart (table.png)."""
from __future__ import annotations

import datetime
import json
import math
import os
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from zoo.tables.plot import plot_table
from zoo.tables.rows import Row, rows_by_timing_machine
from zoo.tables.runs import UNRECORDED, table_tta
from zoo.utils.files import write_text_atomically
from zoo.utils.provenance import machine


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
    extras = [(title, name) for title, name in EXTRA_COLUMNS if any(getattr(r, name) is not None for r in rows)]
    extra_names = [name for _, name in extras]
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
        mark = "" if not row.stale else " (config not recorded)" if row.stale == [UNRECORDED] else " (stale)"
        lines.append(f"| {row.experiment}{mark} | {row.settings} | {paper} | {ours} | {paper_step} | {our_step} | "
                     f"{hold or '-'} |" + "".join(" - |" if v is None else f" {_number(v, n)} |" for v, n in zip(values, extra_names))
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
    if any(name == "proposal_ms" for _, name in extras):
        lines += ["", ("proposals ms / image: for the rows fed given proposals, the median time their method took on "
                       "the same test images, one image at a time, as the proposals file records it (not in ms / "
                       "image); the other rows' proposals are part of their network.")]
    if any(name == "train_minutes" for _, name in extras):
        note = ("train min: each run's training wall clock (its periodic validation included; a resumed run counts "
                "its last process only), mean over seeds; other jobs on the machine lengthen it.")
        lines += ["", note]
    lines += _speed_ratios(rows)
    lines += _records_note(rows)
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
    plot_table(rows, table["title"], metric, paths["png"], paper_bars=same_metric)
    return paths


# Optional columns after the ordering: ours beside the paper's, where any row has a figure.
EXTRA_COLUMNS = (("ms / image", "ms"), ("paper s / image", "paper_test_seconds"),
                 ("proposals ms / image", "proposal_ms"), ("paper proposals s / image", "paper_proposal_seconds"),
                 ("train min", "train_minutes"), ("paper train h", "paper_train_hours"))


def _number(value: float, name: str) -> str:
    return str(value) if name.startswith("paper_") else f"{value:.1f}"  # the paper's as its config gives it, ours to 0.1


def _speed_ratios(rows: Sequence[Row]) -> list[str]:
    """How many times faster each row is than the first, the paper's beside ours: test time without proposals, with
    them, and training time (where the paper gives the figures); none for a table without the paper's speeds."""
    first = rows[0] if rows else None
    if first is None or not any(r.paper_test_seconds is not None or r.paper_train_hours is not None for r in rows):
        return []

    def total(row: Row, paper: bool) -> float | None:
        model, given = ((row.paper_test_seconds, row.paper_proposal_seconds) if paper else
                        (row.ms, row.proposal_ms))
        if model is None or (given is None and row.paper_proposal_seconds is not None):
            return None  # a row on given proposals whose proposals' time is not known: no total to compare
        return model + (given or 0.0)

    measures = (("test time per image, given proposals' time excluded (an RPN's is part of its network)",
                 lambda r: r.paper_test_seconds, lambda r: r.ms),
                ("test time per image, proposals included", lambda r: total(r, True), lambda r: total(r, False)),
                ("training time", lambda r: r.paper_train_hours, lambda r: r.train_minutes))
    lines = ["", f"Times faster than `{first.experiment}` (the paper's / ours):"]
    for title, paper, ours in measures:
        cells = []
        for row in rows[1:]:
            ratios = [None if f(first) is None or not f(row) else f(first) / f(row) for f in (paper, ours)]
            if any(r is not None for r in ratios):
                cells.append(f"{row.experiment} " + " / ".join("-" if r is None else f"{r:.3g}x" for r in ratios))
        if cells:
            lines.append(f"- {title}: " + "; ".join(cells))
    return lines if len(lines) > 2 else []


def _records_note(rows: Sequence[Row]) -> list[str]:
    """What the rows whose figures are not today's config say: stale records, and runs archived without a config."""
    lines = []
    stale = [row for row in rows if row.stale and row.stale != [UNRECORDED]]
    if stale:
        lines += ["", "Stale: " + "; ".join(f"{row.experiment} (differs in {', '.join(k for k in row.stale if k != UNRECORDED)})"
                                           for row in stale)
                  + ". These figures are archived runs trained with another config than the row composes today, "
                  "with the code named above; they are records of that config, not of today's. "
                  "`zoo-reproduce` without `report_only=true` trains them anew."]
    unrecorded = [row.experiment for row in rows if UNRECORDED in row.stale]
    if unrecorded:
        lines += ["", f"Config not recorded: {', '.join(unrecorded)}: archived before runs stored their config, so "
                  "the settings column is the row as it composes today, which these runs may not have trained with "
                  "(the archive's README says what they ran)."]
    return lines


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
