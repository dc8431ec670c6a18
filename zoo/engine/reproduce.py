"""Rerun a paper's table: every row (an experiment file) over seeds, under a protocol, and print our
mean +- std beside the paper's figure. Finished runs (a results.json in their folder) are read, not rerun."""
from __future__ import annotations

import itertools
import json
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from omegaconf import OmegaConf, open_dict

from zoo.cli import CONF_DIR
from zoo.engine.timing import machine

PROTOCOLS = ("paper", "bccd", "synthetic")


@dataclass
class Row:
    experiment: str  # the experiment file, or the model config for a table of models
    settings: str
    paper: float | None
    verified: bool
    runs: list[float]  # our figure per seed, in percent
    ms: float | None = None  # seed 0's inference time per image, for tables with ``speed: true``
    train_minutes: float | None = None  # mean over seeds, for tables with ``train_time: true``

    @property
    def mean(self) -> float:
        return statistics.fmean(self.runs) if self.runs else math.nan

    @property
    def std(self) -> float:
        return statistics.stdev(self.runs) if len(self.runs) > 1 else math.nan


def check_table(table: Mapping[str, Any], protocol: str) -> None:
    """A table node: ``name``, ``title``, ``rows``, ``metric`` and ``protocols``, each
    ``{overrides: [...], metric: (where the paper's does not apply), skip: [rows it cannot run],
    row_overrides: {row: [...]} (after the protocol's, for a row whose paper model maps to another
    small one)}``;
    ``rows_are: experiments`` (files in conf/experiment) or ``models`` (model configs, no paper
    figure); ``speed: true`` adds each row's inference time per image, ``train_time: true`` its
    training minutes."""
    unknown = sorted(set(table) - {"name", "title", "rows", "metric", "protocols", "rows_are", "speed", "train_time"})
    if unknown:
        raise ValueError(f"table {table.get('name')}: unknown key(s) {unknown}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {list(PROTOCOLS)}, got '{protocol}'")
    if protocol not in table["protocols"]:
        raise ValueError(f"table {table['name']} has no '{protocol}' protocol; it has {sorted(table['protocols'])}")
    spec = table["protocols"][protocol]
    unknown = sorted(set(spec) - {"overrides", "metric", "skip", "row_overrides"})
    if unknown:
        raise ValueError(f"table {table['name']}: protocol '{protocol}' has unknown key(s) {unknown}")
    kind = table.get("rows_are", "experiments")
    if kind not in ("experiments", "models"):
        raise ValueError(f"table {table['name']}: rows_are must be 'experiments' or 'models', got '{kind}'")
    folder = "experiment" if kind == "experiments" else "model"
    missing = [r for r in table["rows"] if not (Path(CONF_DIR) / folder / f"{r}.yaml").is_file()]
    if missing:
        raise ValueError(f"table {table['name']}: no {folder} file for row(s) {missing} in conf/{folder}/")
    row_overrides = spec.get("row_overrides") or {}
    strays = sorted(set(row_overrides) - set(table["rows"]))
    if strays:
        raise ValueError(f"table {table['name']}: protocol '{protocol}' has row_overrides for row(s) {strays} "
                         f"that are not in its rows")
    for row, extra in row_overrides.items():
        if not isinstance(extra, list | tuple) or not all(isinstance(o, str) for o in extra):
            raise ValueError(f"table {table['name']}: protocol '{protocol}': row_overrides.{row} must be a list of "
                             f"overrides like [model=fpn_lite], got {extra!r}")


def compose_row(row: str, protocol_overrides: Sequence[str], seed: int, overrides: Sequence[str] = (),
                group: str = "experiment"):
    """The row's config exactly as ``zoo-train <group>=<row> <protocol overrides> seed=<seed> ...``."""
    request = [f"{group}={row}", *protocol_overrides, f"seed={seed}", *overrides]
    if GlobalHydra.instance().is_initialized():  # inside zoo-reproduce's own Hydra app: same conf/ search path
        return compose("train", overrides=request)
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        return compose("train", overrides=request)


def train_row(cfg, run_dir: Path) -> dict[str, Any]:
    """Train the row, continuing from its last.pt if an earlier invocation was interrupted (a row on the
    CPU can take an hour; resuming is exact, and refused if the stored config differs)."""
    from zoo.engine.trainer import Trainer

    if (run_dir / "checkpoints" / "last.pt").is_file():
        with open_dict(cfg):
            cfg.resume = True
    return Trainer(cfg, run_dir).fit()


def row_latency(run_dir: Path) -> float:
    """The run's checkpoint timed on its test images, cached in ``latency.json`` beside it."""
    cached = run_dir / "latency.json"
    if cached.is_file():
        return json.loads(cached.read_text())["ms_per_image"]
    from zoo.engine.latency import checkpoint_latency

    ms = checkpoint_latency(str(run_dir / "checkpoints" / "last.pt"))
    cached.write_text(json.dumps({"ms_per_image": ms, "machine": machine(torch.get_num_threads())}))
    return ms


def reproduce(table: Mapping[str, Any], protocol: str, seeds: int, out_dir: str | Path, overrides: Sequence[str] = (),
              train: Callable[[Any, Path], dict[str, Any]] = train_row,
              latency: Callable[[Path], float] = row_latency) -> list[Row]:
    """Run (or read back) every row x seed under ``out_dir/<row>/seed<k>``; returns the rows."""
    check_table(table, protocol)
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    spec = table["protocols"][protocol]
    protocol_overrides = list(spec.get("overrides", []))
    metric = spec.get("metric") or table["metric"]
    group = "experiment" if table.get("rows_are", "experiments") == "experiments" else "model"
    rows = []
    for experiment in table["rows"]:
        if experiment in spec.get("skip", []):
            continue
        runs, minutes, paper = [], [], {}
        row_overrides = list((spec.get("row_overrides") or {}).get(experiment, []))
        for seed in range(seeds):
            run_dir = Path(out_dir) / experiment / f"seed{seed}"
            done = run_dir / "results.json"
            cfg = compose_row(experiment, protocol_overrides + row_overrides, seed, overrides, group)
            paper = OmegaConf.to_container(cfg.paper, resolve=True) if cfg.get("paper") else {}
            results = json.loads(done.read_text()) if done.is_file() else train(cfg, run_dir)
            if metric not in results.get("metrics", {}):
                raise ValueError(f"{run_dir}: metric '{metric}' was not evaluated "
                                 f"(have {sorted(results.get('metrics', {}))})")
            runs.append(100 * results["metrics"][metric])
            if results.get("train_seconds") is not None:
                minutes.append(results["train_seconds"] / 60)
        settings = _settings(experiment) if group == "experiment" else f"model={experiment}"
        settings += f"; under {protocol}: {' '.join(row_overrides)}" if row_overrides else ""
        ms = latency(Path(out_dir) / experiment / "seed0") if table.get("speed") else None
        train_minutes = statistics.fmean(minutes) if table.get("train_time") and minutes else None
        rows.append(Row(experiment, settings, paper.get("value"), bool(paper.get("verified")), runs, ms, train_minutes))
    return rows


def _settings(experiment: str) -> str:
    """The experiment's own switches, as overrides on one line: its group choices beyond model, data,
    trainer and evaluator (``model/neck=none``) and its ``model`` values."""
    node = OmegaConf.to_container(OmegaConf.load(Path(CONF_DIR) / "experiment" / f"{experiment}.yaml"))
    parts = []
    for entry in node.get("defaults", []):
        if isinstance(entry, dict):
            for key, value in entry.items():
                group = key.removeprefix("override ").lstrip("/")
                if group not in ("model", "data", "trainer", "evaluator"):
                    parts.append(f"{group}={value}")
    parts += [f"model.{key}={json.dumps(value)}" for key, value in _flatten(node.get("model") or {})]
    return ", ".join(parts) or "as the paper"


def _flatten(node: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for key, value in node.items():
        name = f"{prefix}{key}"
        out += _flatten(value, f"{name}.") if isinstance(value, Mapping) else [(name, value)]
    return out


def ordering_holds(rows: Sequence[Row]) -> list[bool | None]:
    """Per row after the first: whether our change from the previous row has the paper's sign
    (None where a figure is missing)."""
    out: list[bool | None] = [None]
    for before, after in itertools.pairwise(rows):
        if before.paper is None or after.paper is None or not before.runs or not after.runs:
            out.append(None)
            continue
        paper, ours = after.paper - before.paper, after.mean - before.mean
        out.append((paper > 0) == (ours > 0) if paper != 0 else None)  # a tie in the paper orders nothing
    return out


def write_table(rows: Sequence[Row], table: Mapping[str, Any], protocol: str, seeds: int, out_dir: str | Path,
                command: str) -> dict[str, str]:
    """table.md, table.json and table.png in ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    holds = ordering_holds(rows)
    metric = table["protocols"][protocol].get("metric") or table["metric"]
    header = f"protocol `{protocol}`, {seeds} seed(s), metric `{metric}` in percent; command: `{command}`"
    extras = [(title, field) for title, field in (("ms / image", "ms"), ("train min", "train_minutes"))
              if any(getattr(r, field) is not None for r in rows)]
    lines = [f"# {table['title']}", "", header, "",
             "| row | settings | paper | ours (mean ± std) | delta | paper's ordering holds |"
             + "".join(f" {title} |" for title, _ in extras),
             "|---|---|---|---|---|---|" + "---|" * len(extras)]
    for row, hold in zip(rows, holds):
        paper = "-" if row.paper is None else f"{row.paper:.1f}" + ("" if row.verified else " (unverified)")
        ours = f"{row.mean:.2f} ± {row.std:.2f}" if len(row.runs) > 1 else f"{row.mean:.2f}"
        comparable = row.paper is not None and metric == table["metric"]  # not voc07 against the paper's coco_ap
        delta = f"{row.mean - row.paper:+.2f}" if comparable else "-"
        values = [getattr(row, field) for _, field in extras]
        lines.append(f"| {row.experiment} | {row.settings} | {paper} | {ours} | {delta} | "
                     f"{'-' if hold is None else ('yes' if hold else 'no')} |"
                     + "".join(" - |" if v is None else f" {v:.1f} |" for v in values))
    if any(field == "ms" for _, field in extras):
        lines += ["", f"ms / image: seed 0's checkpoint, batch 1, median over 20 test images; {machine(torch.get_num_threads())}."]
    if any(field == "train_minutes" for _, field in extras):
        note = ("train min: each run's training wall clock (its periodic validation included; a resumed run counts "
                "its last process only), mean over seeds; other jobs on the machine lengthen it.")
        lines += ["", note]
    skipped = table["protocols"][protocol].get("skip", [])
    if skipped:
        lines += ["", f"Not run under `{protocol}` (the switch does not exist in its model): {', '.join(skipped)}."]
    if protocol != "paper":
        lines += ["", f"The paper's figures are on its own data; under `{protocol}` compare the ordering, not the delta."]
    paths = {"md": str(out / "table.md"), "json": str(out / "table.json"), "png": str(out / "table.png")}
    Path(paths["md"]).write_text("\n".join(lines) + "\n")
    Path(paths["json"]).write_text(json.dumps({
        "table": table["name"], "title": table["title"], "protocol": protocol, "seeds": seeds, "metric": metric,
        "command": command, "rows": [{**asdict(r), "mean": r.mean, "std": r.std, "ordering_holds": h}
                                     for r, h in zip(rows, holds)]}, indent=2))
    _plot(rows, table["title"], metric, paths["png"])
    return paths


def _plot(rows: Sequence[Row], title: str, metric: str, path: str) -> None:
    """Paper and ours side by side per row; or, with times, a speed-accuracy scatter."""
    fig = Figure(figsize=(1.8 + 1.4 * len(rows), 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    if any(r.ms is not None for r in rows):
        timed = [r for r in rows if r.ms is not None]
        ax.errorbar([r.ms for r in timed], [r.mean for r in timed], yerr=[0 if math.isnan(r.std) else r.std for r in timed],
                    fmt="o", capsize=3)
        for r in timed:
            ax.annotate(r.experiment, (r.ms, r.mean), textcoords="offset points", xytext=(4, 4), fontsize="small")
        ax.set(xlabel="ms / image (batch 1)", ylabel=f"{metric} (%)", title=title)
    else:
        x = list(range(len(rows)))
        ax.bar([i - 0.2 for i in x], [r.paper if r.paper is not None else 0 for r in rows], 0.4, label="paper")
        ax.bar([i + 0.2 for i in x], [r.mean for r in rows], 0.4,
               yerr=[0 if math.isnan(r.std) else r.std for r in rows], capsize=3, label="ours")
        ax.set_xticks(x, [r.experiment for r in rows], rotation=25, ha="right", fontsize="small")
        ax.set(ylabel=f"{metric} (%)", title=title)
        ax.legend()
    fig.savefig(path, dpi=80)
