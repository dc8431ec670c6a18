"""Rerun a paper's table: every row (an experiment file) over seeds, under a protocol, and print our
mean +- std beside the paper's figure. Finished runs (a results.json in their folder) are read, not rerun."""
from __future__ import annotations

import datetime
import functools
import json
import logging
import math
import os
import shutil
import statistics
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from omegaconf import OmegaConf, open_dict

from zoo.cli import CONF_DIR
from zoo.engine.checkpoint import write_text_atomically
from zoo.engine.run_archive import archived_name, restore_run, save_run
from zoo.engine.timing import machine

PROTOCOLS = ("paper", "bccd", "synthetic")
log = logging.getLogger("zoo.reproduce")


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
    codes: list[str] = field(default_factory=list)  # per seed, the code it trained with (zoo.engine.timing.code_version)

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
    training minutes; ``reference: <row>`` compares every row with that one (a table whose columns each
    remove one component from the full model) instead of with the row before it (a cumulative table);
    keys starting with ``_`` hold YAML anchors shared by protocols and are otherwise ignored;
    ``tta: <conf/tta file>`` scores every row's checkpoint with the paper's test-time augmentation (a
    protocol's own ``tta``, null included, replaces it); ``also_tta: <conf/tta file>`` adds a column of
    each row scored with it beside the plain figure, and the per-seed change it brings."""
    unknown = sorted(k for k in set(table) - {"name", "title", "rows", "metric", "protocols", "rows_are", "speed",
                                              "train_time", "reference", "tta", "also_tta"} if not k.startswith("_"))
    if unknown:
        raise ValueError(f"table {table.get('name')}: unknown key(s) {unknown}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {list(PROTOCOLS)}, got '{protocol}'")
    if protocol not in table["protocols"]:
        raise ValueError(f"table {table['name']} has no '{protocol}' protocol; it has {sorted(table['protocols'])}")
    spec = table["protocols"][protocol]
    unknown = sorted(set(spec) - {"overrides", "metric", "skip", "row_overrides", "tta"})
    if unknown:
        raise ValueError(f"table {table['name']}: protocol '{protocol}' has unknown key(s) {unknown}")
    kind = table.get("rows_are", "experiments")
    if kind not in ("experiments", "models"):
        raise ValueError(f"table {table['name']}: rows_are must be 'experiments' or 'models', got '{kind}'")
    folder = "experiment" if kind == "experiments" else "model"
    missing = [r for r in table["rows"] if not (Path(CONF_DIR) / folder / f"{r}.yaml").is_file()]
    if missing:
        raise ValueError(f"table {table['name']}: no {folder} file for row(s) {missing} in conf/{folder}/")
    stray_skips = sorted(set(spec.get("skip") or []) - set(table["rows"]))
    if stray_skips:
        raise ValueError(f"table {table['name']}: protocol '{protocol}' skips row(s) {stray_skips} that are not in "
                         f"its rows {list(table['rows'])}")
    reference = table.get("reference")
    if reference is not None and (reference not in table["rows"] or reference in (spec.get("skip") or [])):
        raise ValueError(f"table {table['name']}: reference '{reference}' is not one of the rows run under "
                         f"'{protocol}'")
    for key, name in (("tta", table_tta(table, protocol)), ("also_tta", table.get("also_tta"))):
        if name is not None and not (Path(CONF_DIR) / "tta" / f"{name}.yaml").is_file():
            raise ValueError(f"table {table['name']}: {key} '{name}' has no file conf/tta/{name}.yaml")
    row_overrides = spec.get("row_overrides") or {}
    strays = sorted(set(row_overrides) - set(table["rows"]))
    if strays:
        raise ValueError(f"table {table['name']}: protocol '{protocol}' has row_overrides for row(s) {strays} "
                         f"that are not in its rows")
    for row, extra in row_overrides.items():
        if not isinstance(extra, list | tuple) or not all(isinstance(o, str) for o in extra):
            raise ValueError(f"table {table['name']}: protocol '{protocol}': row_overrides.{row} must be a list of "
                             f"overrides like [model=fpn_lite], got {extra!r}")


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


def table_tta(table: Mapping[str, Any], protocol: str) -> str | None:
    """The test-time augmentation the table's rows are scored with under ``protocol``, if any."""
    spec = table["protocols"][protocol]
    return spec["tta"] if "tta" in spec else table.get("tta")


def _compose(config_name: str, overrides: Sequence[str]):
    if GlobalHydra.instance().is_initialized():  # inside zoo-reproduce's own Hydra app: same conf/ search path
        return compose(config_name, overrides=list(overrides))
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        return compose(config_name, overrides=list(overrides))


def train_overrides(row: str, protocol_overrides: Sequence[str], seed: int, overrides: Sequence[str] = (),
                    group: str = "experiment") -> list[str]:
    """The ``zoo-train`` overrides of one row x seed, in the order that composes it."""
    return [f"{group}={row}", *protocol_overrides, f"seed={seed}", *overrides]


def compose_row(row: str, protocol_overrides: Sequence[str], seed: int, overrides: Sequence[str] = (),
                group: str = "experiment"):
    """The row's config exactly as ``zoo-train <group>=<row> <protocol overrides> seed=<seed> ...``."""
    return _compose("train", train_overrides(row, protocol_overrides, seed, overrides, group))


@dataclass(frozen=True)
class TableRun:
    """One row x seed of a table under a protocol, and the folder it trains in."""
    number: int  # the row's place in the table, from 1
    experiment: str
    seed: int
    run_dir: Path
    protocol_overrides: tuple[str, ...]  # the protocol's, then its overrides for this row alone
    group: str  # experiment, or model for a table of models

    def overrides(self, extra: Sequence[str] = ()) -> list[str]:
        return train_overrides(self.experiment, self.protocol_overrides, self.seed, extra, self.group)

    def compose(self, extra: Sequence[str] = ()):
        return _compose("train", self.overrides(extra))


def table_runs(table: Mapping[str, Any], protocol: str, seeds: int, out_dir: str | Path) -> list[TableRun]:
    """Every row x seed the table runs under ``protocol`` (rows the protocol skips left out), row by row."""
    check_table(table, protocol)
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    spec = table["protocols"][protocol]
    group = "experiment" if table.get("rows_are", "experiments") == "experiments" else "model"
    rows = [r for r in table["rows"] if r not in (spec.get("skip") or [])]
    return [TableRun(number, experiment, seed, Path(out_dir) / experiment / f"seed{seed}",
                     (*spec.get("overrides", []), *_row_overrides(spec, experiment)), group)
            for number, experiment in enumerate(rows, start=1) for seed in range(seeds)]


def restore_archived(run: TableRun, cfg, archive: str | Path | None) -> None:
    """A run with nothing under its folder yet gets its archived figures back, if ``archive`` has them."""
    if archive is not None and not (run.run_dir / "results.json").is_file() and not (run.run_dir / "checkpoints").exists():
        restore_run(Path(archive), archived_name(run.experiment, run.seed), run.run_dir,
                    lambda stored: _config_differences(cfg, stored))


def train_row(cfg, run_dir: Path) -> dict[str, Any]:
    """Train the row, continuing from its last.pt if an earlier invocation was interrupted (a row on the
    CPU can take an hour; resuming is exact, and refused if the stored config differs)."""
    from zoo.engine.trainer import Trainer

    if (run_dir / "checkpoints" / "last.pt").is_file():
        with open_dict(cfg):
            cfg.resume = True
    return Trainer(cfg, run_dir).fit()


def stored_config(run_dir: Path):
    """The config a run's checkpoint was trained with, or None without a checkpoint."""
    checkpoint = run_dir / "checkpoints" / "last.pt"
    if not checkpoint.is_file():
        if (run_dir / "checkpoints").is_symlink():
            raise FileNotFoundError(f"{run_dir}/checkpoints links to {os.readlink(run_dir / 'checkpoints')}, which "
                                    "is gone (the run this row was taken from moved or was deleted): delete "
                                    f"{run_dir} to train the row")
        return None
    return OmegaConf.create(_checkpoint_config(str(checkpoint.resolve()), checkpoint.stat().st_mtime_ns))


@functools.lru_cache(maxsize=512)
def _checkpoint_config(path: str, mtime_ns: int):
    """Read once per checkpoint version: looking for a twin reads every finished run beside the table."""
    from zoo.engine.checkpoint import load_checkpoint

    return load_checkpoint(path, required=("config",))["config"]


def find_twin(cfg, run_dir: Path, search_root: Path) -> Path | None:
    """A finished run under ``search_root`` (``<table>/<row>/seed<k>`` folders, other tables included)
    trained with the config ``cfg`` composes, which the row can take instead of training again (a
    table's full model is often another table's row)."""
    for results in sorted(search_root.glob(f"*/*/{run_dir.name}/results.json")):
        twin = results.parent
        if twin.resolve() == run_dir.resolve() or (twin / "twin.json").is_file():
            continue
        if stored_config(twin) is not None and not _differences(cfg, twin):
            return twin
    return None


def _differences(cfg, run_dir: Path) -> list[str]:
    """The keys in which ``cfg`` differs from the config the run in ``run_dir`` trained with (its checkpoint's,
    else the one an archived run's results carry; none without either), leaves added to the configs since the
    run not counted."""
    stored = stored_config(run_dir)
    if stored is None and (run_dir / "results.json").is_file():
        stored = json.loads((run_dir / "results.json").read_text()).get("config")
    return _config_differences(cfg, stored) if stored is not None else []


def _config_differences(cfg, stored) -> list[str]:
    from zoo.engine.trainer import run_config_differences

    return run_config_differences(cfg, OmegaConf.create(stored), shared_only=True)


def _archived_config(run_dir: Path) -> dict[str, Any] | None:
    stored = stored_config(run_dir)
    return OmegaConf.to_container(stored, resolve=True) if stored is not None else None


def _check_twin_still_fits(cfg, twin: Path, run_dir: Path) -> None:
    """An interrupted take is finished only while the row still composes its twin's config."""
    differ = _differences(cfg, twin)
    if differ:
        raise ValueError(f"{run_dir} was being taken from {twin}, but the row's config now differs from that run's in "
                         f"{differ}: delete {run_dir} to train the row")


def take_twin(twin: Path, run_dir: Path) -> dict[str, Any]:
    """The row's folder points at its twin: ``twin.json`` saying where from, relative to it (written first, so an
    interrupted take is finished, never trained over), its checkpoints linked by a relative link (for
    timing and test-time augmentation; it survives moving the whole runs folder), its results copied."""
    run_dir.mkdir(parents=True, exist_ok=True)
    source = os.path.relpath(twin.resolve(), run_dir.resolve())  # relative, as the link: the runs folder may move
    write_text_atomically(run_dir / "twin.json", json.dumps({"from": source}))
    link = run_dir / "checkpoints"
    if not link.is_symlink():
        if link.is_dir():
            shutil.rmtree(link)  # a run stopped before its first last.pt: nothing to continue
        target = os.path.relpath((twin / "checkpoints").resolve(), run_dir.resolve())
        link.symlink_to(target, target_is_directory=True)
    results = (twin / "results.json").read_text()
    write_text_atomically(run_dir / "results.json", results)
    return json.loads(results)


def read_back(cfg, run_dir: Path) -> dict[str, Any]:
    """A finished run's results, if its checkpoint was trained with the config the row composes now
    (a key added to the configs since, at its default, does not count); a run without a checkpoint
    cannot be checked and is read as it is."""
    differ = _differences(cfg, run_dir)
    if differ:
        raise ValueError(f"{run_dir} finished with another config than this row composes now (differs in "
                         f"{differ}): delete that folder to retrain the row, or pass another out=")
    return json.loads((run_dir / "results.json").read_text())


def row_latency(run_dir: Path) -> float:
    """The run's checkpoint timed on its test images, cached in ``latency.json`` beside it."""
    cached = run_dir / "latency.json"
    if cached.is_file():
        return json.loads(cached.read_text())["ms_per_image"]
    from zoo.engine.latency import checkpoint_latency

    ms = checkpoint_latency(str(run_dir / "checkpoints" / "last.pt"))
    write_text_atomically(cached, json.dumps({"ms_per_image": ms, "machine": machine(torch.get_num_threads())}))
    return ms


def cached_tta(run_dir: Path, tta: str) -> dict[str, Any] | None:
    """The run's ``tta_<tta>.json`` when it was scored with the ``tta`` node conf/tta holds now; None when
    missing or scored with other settings (an edited conf/tta file is scored again, never reused stale)."""
    cached = run_dir / f"tta_{tta}.json"
    if not cached.is_file():
        return None
    results = json.loads(cached.read_text())
    return results if results.get("tta_node") == _tta_node(tta) else None


def _tta_node(tta: str) -> dict[str, Any]:
    return OmegaConf.to_container(_compose("eval", ["checkpoint=none", f"tta={tta}"]).tta, resolve=True)


def row_tta(run_dir: Path, tta: str) -> dict[str, Any]:
    """The run's checkpoint scored on its test split with test-time augmentation ``tta``, as
    ``zoo-eval checkpoint=<run>/checkpoints/last.pt tta=<tta>`` would; cached in ``tta_<tta>.json``
    with the settings it was scored with."""
    results = cached_tta(run_dir, tta)
    if results is not None:
        return results
    from zoo.engine.evaluate import evaluate_checkpoint

    cfg = _compose("eval", [f"checkpoint={run_dir / 'checkpoints' / 'last.pt'}", f"tta={tta}", "plots=false"])
    results = evaluate_checkpoint(cfg)
    results.pop("tables", None)
    results["tta_node"] = OmegaConf.to_container(cfg.tta, resolve=True)
    write_text_atomically(run_dir / f"tta_{tta}.json", json.dumps(results, indent=2))
    return results


def twin_to_take(cfg, run_dir: Path, twins_under: Path | None) -> Path | None:
    """For a run not finished: the twin an interrupted take was taking, else (``twins_under`` given and
    nothing trained yet) a finished twin to take, else None."""
    if (run_dir / "twin.json").is_file():
        twin = run_dir / json.loads((run_dir / "twin.json").read_text())["from"]  # an absolute path stays as it is
        _check_twin_still_fits(cfg, twin, run_dir)
        return twin
    if twins_under is not None and not (run_dir / "checkpoints" / "last.pt").is_file():
        return find_twin(cfg, run_dir, twins_under)
    return None


def run_results(cfg, run_dir: Path, where: str, train: Callable[[Any, Path], dict[str, Any]],
                twins_under: Path | None) -> dict[str, Any]:
    """One row x seed: taken from a finished twin run under ``twins_under`` (or finishing an interrupted
    take), read back when finished, else trained (continuing from its last.pt)."""
    done = (run_dir / "results.json").is_file()
    started = (run_dir / "checkpoints" / "last.pt").is_file()
    twin = None if done else twin_to_take(cfg, run_dir, twins_under)
    if twin is not None:
        log.info(f"{where}: the run in {twin} has this config; taken, not retrained")
        return take_twin(twin, run_dir)
    if done:
        return read_back(cfg, run_dir)
    log.info(f"{where}: training in {run_dir}{' (continuing from its last checkpoint)' if started else ''}")
    for stale in [run_dir / "latency.json", *run_dir.glob("tta_*.json")]:  # timed or scored on an earlier checkpoint
        stale.unlink(missing_ok=True)
    return train(cfg, run_dir)


def reproduce(table: Mapping[str, Any], protocol: str, seeds: int, out_dir: str | Path, overrides: Sequence[str] = (),
              train: Callable[[Any, Path], dict[str, Any]] = train_row,
              latency: Callable[[Path], float] = row_latency, report_only: bool = False,
              score_tta: Callable[[Path, str], dict[str, Any]] = row_tta, reuse: bool = True,
              archive: str | Path | None = None) -> list[Row]:
    """Run (or read back) every row x seed under ``out_dir/<row>/seed<k>``; returns the rows.
    ``report_only`` trains nothing: the rows carry the seeds finished so far (a look at a table that
    takes a day to run, while it runs). ``reuse`` takes a finished run of another table beside this
    one (under ``out_dir``'s parent) whose config is the row's, instead of training it again. ``archive``
    (a folder, see zoo.engine.run_archive) receives each run's figures as soon as it finishes, and gives back
    the runs missing under ``out_dir``."""
    runs_by_row: dict[str, list[TableRun]] = {}
    for run in table_runs(table, protocol, seeds, out_dir):
        runs_by_row.setdefault(run.experiment, []).append(run)
    spec = table["protocols"][protocol]
    metric = spec.get("metric") or table["metric"]
    tta, also_tta = table_tta(table, protocol), table.get("also_tta")
    if not report_only:  # a report trains nothing, so there is nothing to stop early
        check_before_training(runs_by_row, protocol, overrides, table["name"])
    rows = []
    for experiment, row_runs in runs_by_row.items():
        runs, also_runs, minutes, codes, paper, ms = [], [], [], [], {}, None
        for run in row_runs:
            run_dir, seed = run.run_dir, run.seed
            done = run_dir / "results.json"
            cfg = run.compose(overrides)
            if seed == 0 and run.group == "experiment":
                check_row_switches(cfg, list(runs_by_row))
            paper = OmegaConf.to_container(cfg.paper, resolve=True) if cfg.get("paper") else {}
            restore_archived(run, cfg, archive)
            if report_only and not (done.is_file() and all(t is None or cached_tta(run_dir, t) for t in (tta, also_tta))):
                continue  # nothing is computed for a report: a run counts once its figures are on disk
            where = f"{table['name']}: row {run.number}/{len(runs_by_row)} {experiment}, seed {seed + 1}/{seeds}"
            results = run_results(cfg, run_dir, where, train, Path(out_dir).parent if reuse else None)
            scored = score_tta(run_dir, tta) if tta is not None else results
            if metric not in scored.get("metrics", {}):
                raise ValueError(f"{run_dir}: metric '{metric}' was not evaluated "
                                 f"(have {sorted(scored.get('metrics', {}))})")
            runs.append(100 * scored["metrics"][metric])
            codes.append(results.get("code") or "not recorded")
            if also_tta is not None:
                also_runs.append(100 * score_tta(run_dir, also_tta)["metrics"][metric])
            if results.get("train_seconds") is not None:
                minutes.append(results["train_seconds"] / 60)
            if seed == 0 and table.get("speed") and (not report_only or (run_dir / "latency.json").is_file()):
                ms = latency(run_dir)  # timed now, while the checkpoint is here
            if archive is not None:
                save_run(run_dir, Path(archive), archived_name(experiment, seed), _archived_config(run_dir))
        row_overrides = _row_overrides(spec, experiment)
        settings = _settings(experiment, cfg) if row_runs[0].group == "experiment" else f"model={experiment}"
        settings += f"; under {protocol}: {' '.join(row_overrides)}" if row_overrides else ""
        train_minutes = statistics.fmean(minutes) if table.get("train_time") and minutes else None
        timing = Path(out_dir) / experiment / "seed0" / "latency.json"
        timed_on = json.loads(timing.read_text()).get("machine") if ms is not None and timing.is_file() else None
        rows.append(Row(experiment, settings, paper.get("value"), bool(paper.get("verified")), runs, ms, train_minutes,
                        bool(paper.get("step_verified")), timed_on, also_runs, codes))
    return rows


def check_before_training(runs_by_row: Mapping[str, Sequence[TableRun]], protocol: str, overrides: Sequence[str],
                           table_name: str) -> None:
    """What would stop the table midway, checked before anything trains: under the paper protocol every row's
    pretrained weights, and every finished run against the config its row composes now (``read_back`` refuses
    a run trained with another), so that a table does not stop at its fifth row after hours on the first four."""
    for experiment, row_runs in runs_by_row.items():
        for run in row_runs:
            finished = (run.run_dir / "results.json").is_file() and not (run.run_dir / "twin.json").is_file()
            if not finished and not (run.seed == 0 and protocol == "paper"):
                continue
            cfg = run.compose(overrides)
            if run.seed == 0 and protocol == "paper":
                check_pretrained(cfg, f"table {table_name}, row {experiment}")
            if finished:
                read_back(cfg, run.run_dir)


def _row_overrides(spec: Mapping[str, Any], experiment: str) -> list[str]:
    """The protocol's overrides for this row alone (after the protocol's own)."""
    return list((spec.get("row_overrides") or {}).get(experiment, []))


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
                if group not in ("model", "data", "trainer", "evaluator"):
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
        machines = sorted({r.timed_on for r in rows if r.timed_on}) or [machine(torch.get_num_threads())]
        lines += ["", ("ms / image: seed 0's checkpoint, batch 1, median over 20 test images at each model's own test "
                  f"input size (keep-ratio models see the image's aspect), timed when the run finished; "
                  f"{'; '.join(machines)}" + (" (rows timed on different machines: their times do not compare)"
                                              if len(machines) > 1 else "") + ".")]
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
    Path(paths["md"]).write_text("\n".join(lines) + "\n")
    Path(paths["json"]).write_text(json.dumps({
        "table": table["name"], "title": table["title"], "protocol": protocol, "seeds": seeds, "metric": metric,
        "command": command, "reference": reference, "finished_runs": finished, "tta": tta,
        "also_tta": table.get("also_tta"), "pairs_in_papers_order": None if of_models else pairs_in_papers_order(rows),
        "rows": [{**asdict(r), "mean": _finite(r.mean), "std": _finite(r.std), "ordering_holds": h}
                 for r, h in zip(rows, holds)]}, indent=2))
    _plot(rows, table["title"], metric, paths["png"], paper_bars=same_metric)
    return paths


def _code_line(rows: Sequence[Row]) -> str:
    """Which code the runs trained with: one commit, or the rows of each when the table spans code changes."""
    rows_of: dict[str, list[str]] = {}
    for row in rows:
        for code in dict.fromkeys(row.codes):
            rows_of.setdefault(code, []).append(row.experiment)
    if not rows_of or list(rows_of) == ["not recorded"]:  # runs from before results.json recorded it
        return ""
    if len(rows_of) == 1:
        return f" Runs trained with code `{next(iter(rows_of))}`."
    return " Runs trained with different code: " + "; ".join(
        f"`{code}` ({', '.join(names)})" for code, names in rows_of.items()) + "."


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


def _plot(rows: Sequence[Row], title: str, metric: str, path: str, paper_bars: bool = True) -> None:
    """Paper and ours side by side per row (ours alone when the paper's metric differs); or, with
    times, a speed-accuracy scatter."""
    fig = Figure(figsize=(1.8 + 1.4 * len(rows), 4.0), layout="constrained")
    title = "\n".join(textwrap.wrap(title, width=int(14 + 12 * len(rows))))  # a long title wraps, not cut off
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
