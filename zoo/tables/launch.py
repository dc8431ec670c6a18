"""A table's runs as ``zoo-train`` commands, to train them anywhere (one GPU each, cluster jobs, a Hydra
launcher) instead of one after another in ``zoo-reproduce``'s process. Each command trains its run in the
folder where ``zoo-reproduce`` looks for it, so running the same ``zoo-reproduce`` again afterwards reads the
runs back (checking each against the config its row composes) and writes the table."""
from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo.tables.archive import archived_name, clear_stale, save_run, stale_keys
from zoo.tables.reproduce import check_before_training
from zoo.tables.runs import (TableRun, archived_config, restore_archived, table_runs, take_twin, train_overrides,
                             twin_to_take)

LAUNCH_MODES = ("here", "commands", "multirun", "slurm")


def pending_runs(table: Mapping[str, Any], protocol: str, seeds: int, out_dir: str | Path,
                 overrides: Sequence[str] = (), reuse: bool = True, archive: str | Path | None = None
                 ) -> list[TableRun]:
    """The runs the table still has to train. What needs no training happens first, as ``zoo-reproduce``
    would do it: archived runs are restored and finished twins taken; finished runs are checked against
    their rows' configs, and the paper protocol's pretrained weights are checked. With ``archive``, the runs
    earlier commands finished are archived, as zoo-reproduce archives a run it trains: running this again
    between commands keeps what is done safe from losing the runs folder."""
    out_dir = Path(out_dir).resolve()  # the commands may run from another folder
    runs = table_runs(table, protocol, seeds, out_dir)
    check_before_training(runs, protocol, overrides, table["name"])
    pending = []
    for run in runs:
        if (run.run_dir / "results.json").is_file() and stale_keys(run.run_dir) is not None:
            clear_stale(run.run_dir)  # a stale record restored for a report: the row trains anew
        if (run.run_dir / "results.json").is_file():
            if archive is not None:
                save_run(run.run_dir, Path(archive), archived_name(run.experiment, run.seed), archived_config(run.run_dir))
            continue
        cfg = run.compose(overrides)
        restore_archived(run, cfg, archive)
        if (run.run_dir / "results.json").is_file():
            continue
        twin = twin_to_take(cfg, run.run_dir, out_dir.parent if reuse else None)
        if twin is not None:
            take_twin(twin, run.run_dir)
            continue
        pending.append(run)
    return pending


def _started(run: TableRun) -> bool:
    return (run.run_dir / "checkpoints" / "last.pt").is_file()


def run_commands(pending: Sequence[TableRun], overrides: Sequence[str] = ()) -> list[str]:
    """One ``zoo-train`` command per run; an interrupted run continues from its last checkpoint."""
    return [shlex.join(["zoo-train", *run.overrides(overrides), f"hydra.run.dir={run.run_dir}",
                   *(["resume=true"] if _started(run) else [])]) for run in pending]


def multirun_commands(pending: Sequence[TableRun], overrides: Sequence[str] = ()) -> list[str]:
    """One ``zoo-train -m`` sweep per row over the seeds it has not started (a Hydra launcher can spread it:
    append ``hydra/launcher=...``), and an interrupted run as its own command, continuing."""
    commands, fresh = [], {}
    for run in pending:
        if _started(run):
            commands += run_commands([run], overrides)
        else:
            fresh.setdefault(run.experiment, []).append(run)
    for runs in fresh.values():
        first, seeds = runs[0], ",".join(str(run.seed) for run in runs)
        words = train_overrides(first.experiment, first.protocol_overrides, seeds, overrides, first.group)
        commands.append(shlex.join(["zoo-train", "-m", *words, f"hydra.sweep.dir={first.run_dir.parent}",
                                    "hydra.sweep.subdir=seed${seed}"]))
    return commands


def launch_commands(mode: str, table: Mapping[str, Any], protocol: str, seeds: int, out_dir: str | Path,
                    overrides: Sequence[str] = (), reuse: bool = True, archive: str | Path | None = None) -> list[str]:
    """The commands that train what the table still lacks, one per run (``mode=commands``, and ``slurm``: one array
    task each) or one sweep per row (``mode=multirun``)."""
    if mode not in LAUNCH_MODES[1:]:
        raise ValueError(f"launch={mode!r}: expected one of {list(LAUNCH_MODES)}")
    pending = pending_runs(table, protocol, seeds, out_dir, overrides, reuse, archive)
    return (multirun_commands if mode == "multirun" else run_commands)(pending, overrides)


def slurm_array_script(commands: Sequence[str], name: str, out_dir: str | Path, bin_dir: str | Path,
                       resources: Mapping[str, Any]) -> str:
    """An ``sbatch`` script running ``commands`` as one array job, a task per command (``$SLURM_ARRAY_TASK_ID``
    picks it); ``resources``: cpus_per_task, gpus_per_task (0: none asked), time, partition (None: the cluster's
    default). Each task's output goes to ``<out_dir>/slurm-<job>_<task>.out``."""
    directives = [f"--job-name=zoo-{name}", f"--array=0-{len(commands) - 1}", "--nodes=1", "--ntasks=1",
                  f"--cpus-per-task={int(resources['cpus_per_task'])}", f"--time={resources['time']}",
                  f"--output={Path(out_dir).resolve()}/slurm-%A_%a.out"]
    if int(resources.get("gpus_per_task") or 0) > 0:
        directives.append(f"--gpus-per-task={int(resources['gpus_per_task'])}")
    if resources.get("partition"):
        directives.append(f"--partition={resources['partition']}")
    lines = ["#!/usr/bin/env bash", *(f"#SBATCH {d}" for d in directives),
             f"export PATH={shlex.quote(str(bin_dir))}:\"$PATH\"  # the zoo-* commands that wrote this",
             "RUNS=(", *(f"  {shlex.quote(c)}" for c in commands), ")",
             'eval "${RUNS[$SLURM_ARRAY_TASK_ID]}"']
    return "\n".join(lines) + "\n"
