"""Rerun a paper's table: every row (an experiment file) over seeds, under a protocol, and print our
mean +- std beside the paper's figure. Finished runs (a results.json in their folder) are read, not rerun."""
from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf, open_dict

from zoo.config.compose import compose_config, named_tta
from zoo.config.paths import CONF_DIR
from zoo.tables.archive import archived_name, clear_stale, save_run, stale_keys
from zoo.tables.rows import Row
from zoo.tables.runs import (TableRun, archived_config, by_row, protocol_row_overrides, read_back, restore_archived,
                             table_runs, table_tta, take_twin, twin_to_take)
from zoo.utils.files import write_text_atomically
from zoo.utils.provenance import machine

log = logging.getLogger("zoo.reproduce")


def check_row_switches(cfg, rows: Sequence[str]) -> None:
    """The data's ``augment`` settings are merged over the model's train transform. A key that one of the
    table's rows switches is what the table compares, so the data must not set it for every row (the rows
    would differ in name only); such a protocol is refused."""
    switched = set()
    for row in rows:
        node = OmegaConf.load(Path(CONF_DIR) / "experiment" / f"{row}.yaml")
        switched |= set(OmegaConf.select(node, "model.transforms.train") or {})
    kind = cfg.model.transforms.train.get("type")
    clashes = sorted(switched & set((cfg.data.get("augment") or {}).get(kind) or {}))
    if clashes:
        raise ValueError(f"data '{cfg.data.name}' sets augment.{kind}.{clashes} for every row, but the table's rows "
                         f"switch them; add '~data.augment.{kind}' to the protocol's overrides")


def check_pretrained(cfg, where: str) -> None:
    """Under the paper protocol every pretrained-weights entry of the model must be given: the papers' VGG16 and
    ResNet-50 models start from ImageNet, and from scratch the rows would not be the paper's (CornerNet's
    hourglass has no such entry: it trains from scratch, as in its paper)."""
    unset = [f"model.{key}" for key, value in _flatten(OmegaConf.to_container(cfg.model, resolve=True))
             if key.split(".")[-1] == "weights" and value is None]
    if unset:
        example = ",".join(f'"{key}=/path/imagenet.pth"' for key in unset)
        raise ValueError(f"{where}: the paper's model starts from ImageNet weights, but {unset} are not set; pass "
                         f"them for every row, e.g. 'overrides=[{example}]' (torchvision's files, downloaded "
                         "beforehand; the box heads of the VGG16 and C4 models read the backbone's file)")


def train_row(cfg, run_dir: Path) -> dict[str, Any]:
    """Train the row, continuing from its last.pt if an earlier invocation was interrupted (a row on the
    CPU can take an hour; resuming is exact, and refused if the stored config differs)."""
    from zoo.engine.trainer import Trainer

    if (run_dir / "checkpoints" / "last.pt").is_file():
        with open_dict(cfg):
            cfg.resume = True
    return Trainer(cfg, run_dir).fit()


def row_latency(run_dir: Path) -> float:
    """The run's checkpoint timed on its test images, cached in ``latency.json`` beside it (with its proposals'
    time, for a model fed given proposals)."""
    cached = run_dir / "latency.json"
    if cached.is_file():
        return json.loads(cached.read_text())["ms_per_image"]
    from zoo.apis.latency import checkpoint_timing

    timing = checkpoint_timing(str(run_dir / "checkpoints" / "last.pt"))
    write_text_atomically(cached, json.dumps({**timing, "machine": machine(torch.get_num_threads())}))
    return timing["ms_per_image"]


def cached_tta(run_dir: Path, tta: str) -> dict[str, Any] | None:
    """The run's ``tta_<tta>.json`` when it was scored with the ``tta`` node conf/tta holds now; None when
    missing or scored with other settings (an edited conf/tta file is scored again, never reused stale)."""
    cached = run_dir / f"tta_{tta}.json"
    if not cached.is_file():
        return None
    results = json.loads(cached.read_text())
    return results if results.get("tta_node") == named_tta(tta) else None


def row_tta(run_dir: Path, tta: str) -> dict[str, Any]:
    """The run's checkpoint scored on its test split with test-time augmentation ``tta``, as
    ``zoo-eval checkpoint=<run>/checkpoints/last.pt tta=<tta>`` would; cached in ``tta_<tta>.json``
    with the settings it was scored with."""
    results = cached_tta(run_dir, tta)
    if results is not None:
        return results
    from zoo.apis.evaluate import evaluate_checkpoint

    cfg = compose_config("eval", [f"checkpoint={run_dir / 'checkpoints' / 'last.pt'}", f"tta={tta}", "plots=false"])
    results = evaluate_checkpoint(cfg)
    results.pop("tables", None)
    results["tta_node"] = OmegaConf.to_container(cfg.tta, resolve=True)
    write_text_atomically(run_dir / f"tta_{tta}.json", json.dumps(results, indent=2))
    return results


def run_results(cfg, run_dir: Path, where: str, train: Callable[[Any, Path], dict[str, Any]],
                twins_under: Path | None, report_only: bool = False) -> tuple[dict[str, Any], list[str]]:
    """One row x seed, and the config keys in which its figures' run differs from the row today (a stale record,
    for a report only): taken from a finished twin run under ``twins_under`` (or finishing an interrupted
    take), read back when finished, else trained (continuing from its last.pt). Outside a report a stale record
    restored from an archive is cleared and the row trained anew."""
    if not report_only and stale_keys(run_dir) is not None:
        log.info(f"{where}: {run_dir} holds archived figures of another config; training the row with today's")
        clear_stale(run_dir)
    done = (run_dir / "results.json").is_file()
    started = (run_dir / "checkpoints" / "last.pt").is_file()
    twin = None if done else twin_to_take(cfg, run_dir, twins_under)
    if twin is not None:
        log.info(f"{where}: the run in {twin} has this config; taken, not retrained")
        return take_twin(twin, run_dir), []
    if done:
        return read_back(cfg, run_dir, keep_stale=report_only)
    log.info(f"{where}: training in {run_dir}{' (continuing from its last checkpoint)' if started else ''}")
    for stale in [run_dir / "latency.json", *run_dir.glob("tta_*.json")]:  # timed or scored on an earlier checkpoint
        stale.unlink(missing_ok=True)
    return train(cfg, run_dir), []


def reproduce(table: Mapping[str, Any], protocol: str, seeds: int, out_dir: str | Path, overrides: Sequence[str] = (),
              train: Callable[[Any, Path], dict[str, Any]] = train_row,
              latency: Callable[[Path], float] = row_latency, report_only: bool = False,
              score_tta: Callable[[Path, str], dict[str, Any]] = row_tta, reuse: bool = True,
              archive: str | Path | None = None) -> list[Row]:
    """Run (or read back) every row x seed under ``out_dir/<row>/seed<k>``; returns the rows.
    ``report_only`` trains nothing: the rows carry the seeds finished so far (a look at a table that
    takes a day to run, while it runs). ``reuse`` takes a finished run of another table beside this
    one (under ``out_dir``'s parent) whose config is the row's, instead of training it again. ``archive``
    (a folder, see zoo.tables.archive) receives each run's figures as soon as it finishes, and gives back
    the runs missing under ``out_dir``."""
    runs = table_runs(table, protocol, seeds, out_dir)
    runs_by_row = by_row(runs)
    spec = table["protocols"][protocol]
    metric = spec.get("metric") or table["metric"]
    tta, also_tta = table_tta(table, protocol), table.get("also_tta")
    if not report_only:  # a report trains nothing, so there is nothing to stop early
        check_before_training(runs, protocol, overrides, table["name"])
    rows = []
    for experiment, row_runs in runs_by_row.items():
        figures, cfg = RowFigures(), None
        for run in row_runs:
            cfg = run.compose(overrides)
            restore_archived(run, cfg, archive, keep_stale=report_only)
            if report_only and not _has_figures(run.run_dir, tta, also_tta):
                continue  # nothing is computed for a report: a run counts once its figures are on disk
            where = f"{table['name']}: row {run.number}/{len(runs_by_row)} {experiment}, seed {run.seed + 1}/{seeds}"
            results, stale = run_results(cfg, run.run_dir, where, train, Path(out_dir).parent if reuse else None,
                                         report_only)
            timed = run.seed == 0 and table.get("speed") and (not report_only or (run.run_dir / "latency.json").is_file())
            figures.add(run.run_dir, results, metric, tta, also_tta, score_tta, latency if timed else None)
            figures.stale += [key for key in stale if key not in figures.stale]
            if archive is not None and not stale:  # a stale record stays in the archive as it was
                save_run(run.run_dir, Path(archive), archived_name(experiment, run.seed), archived_config(run.run_dir))
        rows.append(_row(experiment, row_runs[0].group, cfg, figures, spec, protocol, table, Path(out_dir)))
    return rows


def _has_figures(run_dir: Path, tta: str | None, also_tta: str | None) -> bool:
    """Whether a finished run's figures, its test-time-augmented scores included, are all on disk."""
    return (run_dir / "results.json").is_file() and all(t is None or cached_tta(run_dir, t) for t in (tta, also_tta))


@dataclass
class RowFigures:
    """What a row's runs contribute to its line: the metric per seed (in percent, scored with the table's
    ``tta`` if it has one, and with its ``also_tta``), training minutes, code versions, seed 0's latency, and
    what makes a stale record stale."""
    runs: list[float] = field(default_factory=list)
    also_runs: list[float] = field(default_factory=list)
    minutes: list[float] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    ms: float | None = None
    stale: list[str] = field(default_factory=list)  # config keys in which a seed's run differs from the row today

    def add(self, run_dir: Path, results: dict[str, Any], metric: str, tta: str | None, also_tta: str | None,
            score_tta: Callable[[Path, str], dict[str, Any]], latency: Callable[[Path], float] | None) -> None:
        scored = score_tta(run_dir, tta) if tta is not None else results
        if metric not in scored.get("metrics", {}):
            raise ValueError(f"{run_dir}: metric '{metric}' was not evaluated (have {sorted(scored.get('metrics', {}))})")
        self.runs.append(100 * scored["metrics"][metric])
        self.codes.append(results.get("code") or "not recorded")
        if also_tta is not None:
            self.also_runs.append(100 * score_tta(run_dir, also_tta)["metrics"][metric])
        if results.get("train_seconds") is not None:
            self.minutes.append(results["train_seconds"] / 60)
        if latency is not None:
            self.ms = latency(run_dir)  # timed now, while the checkpoint is here


def _row(experiment: str, group: str, cfg, figures: RowFigures, spec: Mapping[str, Any], protocol: str,
         table: Mapping[str, Any], out_dir: Path) -> Row:
    """The table's line for a row: its settings, the paper's figure (from the row's config) and ours."""
    paper = OmegaConf.to_container(cfg.paper, resolve=True) if cfg.get("paper") else {}
    row_overrides = protocol_row_overrides(spec, experiment)
    settings = _settings(experiment, cfg) if group == "experiment" else f"model={experiment}"
    settings += f"; under {protocol}: {' '.join(row_overrides)}" if row_overrides else ""
    train_minutes = statistics.fmean(figures.minutes) if table.get("train_time") and figures.minutes else None
    timing = out_dir / experiment / "seed0" / "latency.json"
    timed = json.loads(timing.read_text()) if figures.ms is not None and timing.is_file() else {}
    return Row(experiment, settings, paper.get("value"), bool(paper.get("verified")), figures.runs, ms=figures.ms,
               train_minutes=train_minutes, step_verified=bool(paper.get("step_verified")),
               timed_on=timed.get("machine"), also_runs=figures.also_runs, codes=figures.codes, stale=figures.stale,
               proposal_ms=timed.get("proposal_ms_per_image"), paper_train_hours=paper.get("train_hours"),
               paper_test_seconds=paper.get("test_seconds"), paper_proposal_seconds=paper.get("proposal_seconds"))


def check_before_training(runs: Sequence[TableRun], protocol: str, overrides: Sequence[str], table_name: str) -> None:
    """What would stop the table midway, checked before anything trains (by ``zoo-reproduce`` and by its
    ``launch=`` commands alike): every row's switches against the protocol's data, under the paper protocol
    every row's pretrained weights, and every finished run against the config its row composes now
    (``read_back`` refuses a run trained with another), so that a table does not stop at its fifth row after
    hours on the first four."""
    rows = list(dict.fromkeys(run.experiment for run in runs))
    for run in runs:
        finished = ((run.run_dir / "results.json").is_file() and not (run.run_dir / "twin.json").is_file()
                    and stale_keys(run.run_dir) is None)  # a stale record trains anew
        if not finished and run.seed != 0:
            continue
        cfg = run.compose(overrides)
        if run.seed == 0 and run.group == "experiment":
            check_row_switches(cfg, rows)
        if run.seed == 0 and protocol == "paper":
            check_pretrained(cfg, f"table {table_name}, row {run.experiment}")
        if finished:
            read_back(cfg, run.run_dir)


def _settings(experiment: str, cfg) -> str:
    """The experiment's own switches, as overrides on one line: its group choices beyond model, data,
    trainer and evaluator (``model/neck=none``) and its ``model`` values, as the row's composed ``cfg`` has them
    (a protocol that sets one of them otherwise is named beside the value it replaced)."""
    node = OmegaConf.to_container(OmegaConf.load(Path(CONF_DIR) / "experiment" / f"{experiment}.yaml"))
    parts = []
    for entry in node.get("defaults", []):
        if isinstance(entry, dict):
            for key, value in entry.items():
                group = key.removeprefix("override ").lstrip("/")
                if group == "model" and cfg.model.get("name") == value:  # rows that differ in their model say which
                    parts.insert(0, f"model={value}")
                elif group not in ("model", "data", "trainer", "evaluator"):
                    parts.append(f"{group}={value}")
    for key, value in _flatten(node.get("model") or {}):
        ran = OmegaConf.select(cfg, f"model.{key}")
        ran = OmegaConf.to_container(ran, resolve=True) if OmegaConf.is_config(ran) else ran
        parts.append(f"model.{key}={json.dumps(ran)}" + ("" if ran == value else
                                                          f" (the protocol's; the row sets {json.dumps(value)})"))
    return ", ".join(parts) or "as the paper"


def _flatten(node: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for key, value in node.items():
        name = f"{prefix}{key}"
        out += _flatten(value, f"{name}.") if isinstance(value, Mapping) else [(name, value)]
    return out
