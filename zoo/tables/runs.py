"""A table's runs: which row x seed trains where, with which config, and how a finished one is found again
(read back and checked against the config its row composes now, restored from an archive, or taken from a
twin run of another table)."""
from __future__ import annotations

import functools
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from zoo.config import stored_run_config
from zoo.config.compose import compose_config
from zoo.config.paths import CONF_DIR
from zoo.utils.files import write_text_atomically
from zoo.tables.archive import archived_name, restore_run, stale_keys

PROTOCOLS = ("paper", "bccd", "synthetic")
UNRECORDED = "config not recorded"  # a run archived before runs stored their config: it cannot be checked


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


def table_tta(table: Mapping[str, Any], protocol: str) -> str | None:
    """The test-time augmentation the table's rows are scored with under ``protocol``, if any."""
    spec = table["protocols"][protocol]
    return spec["tta"] if "tta" in spec else table.get("tta")


def train_overrides(row: str, protocol_overrides: Sequence[str], seed: int | str, overrides: Sequence[str] = (),
                    group: str = "experiment") -> list[str]:
    """The ``zoo-train`` overrides of one row x seed (or of a sweep, seed ``"0,1"``), in the order that composes it."""
    return [f"{group}={row}", *protocol_overrides, f"seed={seed}", *overrides]


def compose_row(row: str, protocol_overrides: Sequence[str], seed: int, overrides: Sequence[str] = (),
                group: str = "experiment"):
    """The row's config exactly as ``zoo-train <group>=<row> <protocol overrides> seed=<seed> ...``."""
    return compose_config("train", train_overrides(row, protocol_overrides, seed, overrides, group))


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
        return compose_row(self.experiment, self.protocol_overrides, self.seed, extra, self.group)


def table_runs(table: Mapping[str, Any], protocol: str, seeds: int, out_dir: str | Path) -> list[TableRun]:
    """Every row x seed the table runs under ``protocol`` (rows the protocol skips left out), row by row."""
    check_table(table, protocol)
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    spec = table["protocols"][protocol]
    group = "experiment" if table.get("rows_are", "experiments") == "experiments" else "model"
    rows = [r for r in table["rows"] if r not in (spec.get("skip") or [])]
    return [TableRun(number, experiment, seed, Path(out_dir) / experiment / f"seed{seed}",
                     (*spec.get("overrides", []), *protocol_row_overrides(spec, experiment)), group)
            for number, experiment in enumerate(rows, start=1) for seed in range(seeds)]


def by_row(runs: Sequence[TableRun]) -> dict[str, list[TableRun]]:
    """The runs grouped by row, rows in table order."""
    rows: dict[str, list[TableRun]] = {}
    for run in runs:
        rows.setdefault(run.experiment, []).append(run)
    return rows


def restore_archived(run: TableRun, cfg, archive: str | Path | None, keep_stale: bool = False) -> None:
    """A run with nothing under its folder yet gets its archived figures back, if ``archive`` has them; one trained
    with another config than its row's today only with ``keep_stale`` (a report), marked stale (see restore_run)."""
    if archive is not None and not (run.run_dir / "results.json").is_file() and not (run.run_dir / "checkpoints").exists():
        restore_run(Path(archive), archived_name(run.experiment, run.seed), run.run_dir,
                    lambda stored: _config_differences(cfg, stored), keep_stale)


def stored_config(run_dir: Path):
    """The config a run's checkpoint was trained with, or None without a checkpoint."""
    checkpoint = run_dir / "checkpoints" / "last.pt"
    if not checkpoint.is_file():
        if (run_dir / "checkpoints").is_symlink():
            raise FileNotFoundError(f"{run_dir}/checkpoints links to {os.readlink(run_dir / 'checkpoints')}, which "
                                    "is gone (the run this row was taken from moved or was deleted): delete "
                                    f"{run_dir} to train the row")
        return None
    return stored_run_config(_checkpoint_config(str(checkpoint.resolve()), checkpoint.stat().st_mtime_ns), checkpoint)


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
    from zoo.config.compare import run_config_differences

    return run_config_differences(cfg, stored_run_config(stored), shared_only=True)


def archived_config(run_dir: Path) -> dict[str, Any] | None:
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


def read_back(cfg, run_dir: Path, keep_stale: bool = False) -> tuple[dict[str, Any], list[str]]:
    """A finished run's results and the config keys in which it differs from the config its row composes now
    (a key added to the configs since, at its default, does not count; a run without a checkpoint or a stored
    config cannot be checked and is read as it is). A difference is refused unless ``keep_stale`` (a report shows
    such a run as the stale record it is); a stale record restored from an archive carries its own keys."""
    results = json.loads((run_dir / "results.json").read_text())
    stale = stale_keys(run_dir)
    if stale is not None:
        return results, stale
    if keep_stale and stored_config(run_dir) is None and results.get("config") is None:
        return results, [UNRECORDED]  # a report says so: its settings are today's row, not necessarily the run's
    differ = _differences(cfg, run_dir)
    if differ and not keep_stale:
        raise ValueError(f"{run_dir} finished with another config than this row composes now (differs in "
                         f"{differ}): delete that folder to retrain the row, or pass another out=")
    return results, differ


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


def protocol_row_overrides(spec: Mapping[str, Any], experiment: str) -> list[str]:
    """The protocol's overrides for this row alone (after the protocol's own)."""
    return list((spec.get("row_overrides") or {}).get(experiment, []))
