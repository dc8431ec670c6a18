"""A table's finished runs kept without their checkpoints, in one folder: each run's ``results.json`` with the
config it trained with as ``<row>_seed<k>.json``, its ``latency.json`` and ``tta_<name>.json`` as
``<row>_seed<k>_latency.json`` and ``<row>_seed<k>_tta_<name>.json``. Small enough to commit beside the table,
it lets a table that takes days of CPU be finished on another machine, or after its runs folder is gone: a run
missing from the runs folder is restored from the archive instead of trained again."""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo.utils.files import write_text_atomically

log = logging.getLogger("zoo.reproduce")

_EXTRAS = ("latency.json", "tta_*.json")  # what a run's folder holds besides results.json, worth keeping
STALE = "stale.json"  # in a run folder restored from a run trained with another config than its row's today


def archived_name(row: str, seed: int) -> str:
    return f"{row}_seed{seed}"


def save_run(run_dir: Path, archive: Path, name: str, config: dict[str, Any] | None) -> None:
    """Copy the finished run's figures into ``archive``; ``config`` (the run's, from its checkpoint) is stored
    with its results so that a restore can be checked against the row's config."""
    archive.mkdir(parents=True, exist_ok=True)
    results = json.loads((run_dir / "results.json").read_text())
    if config is not None:
        results["config"] = config
    for pattern in _EXTRAS:
        for extra in sorted(run_dir.glob(pattern)):
            write_text_atomically(archive / f"{name}_{extra.name}", extra.read_text())
    write_text_atomically(archive / f"{name}.json", json.dumps(results, indent=2))


def restore_run(archive: Path, name: str, run_dir: Path, differences: Callable[[dict[str, Any]], list[str]],
                keep_stale: bool = False) -> bool:
    """Put an archived run back in ``run_dir`` (its results.json last: it marks the run finished); False when the
    archive has no such run, or has it trained with another config than the row composes now (``differences(config)``
    lists the keys that differ) and ``keep_stale`` is off: the row then trains anew, and its new figures replace
    the old ones in the archive. With ``keep_stale`` such a run is restored as the record it is, marked stale
    (``stale.json``: the keys that differ), for a report. An archive written before configs were stored is
    restored as it is."""
    source = archive / f"{name}.json"
    if not source.is_file():
        return False
    results = json.loads(source.read_text())
    if results.get("config") is None:
        log.warning(f"{source} records no config (archived before runs stored theirs): restored unchecked")
    differ = differences(results["config"]) if results.get("config") is not None else []
    if differ and not keep_stale:
        log.info(f"{source} was trained with another config than its row composes now (it differs in {differ}): "
                 "the row trains anew")
        return False
    run_dir.mkdir(parents=True, exist_ok=True)
    for pattern in _EXTRAS:
        for extra in sorted(archive.glob(f"{name}_{pattern}")):
            write_text_atomically(run_dir / extra.name.removeprefix(f"{name}_"), extra.read_text())
    if differ:
        write_text_atomically(run_dir / STALE, json.dumps({"differs": differ, "code": results.get("code")}))
    write_text_atomically(run_dir / "results.json", source.read_text())
    return True


def stale_keys(run_dir: Path) -> list[str] | None:
    """The config keys in which a run restored as a stale record differs from its row today; None for any other."""
    marker = run_dir / STALE
    return json.loads(marker.read_text())["differs"] if marker.is_file() else None


def clear_stale(run_dir: Path) -> None:
    """Remove a stale record's figures from its run folder (results.json first: the run is no longer finished), so
    that the row trains there with today's config."""
    (run_dir / "results.json").unlink(missing_ok=True)
    for pattern in (*_EXTRAS, STALE):
        for path in run_dir.glob(pattern):
            path.unlink()
