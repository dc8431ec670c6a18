"""`zoo-reproduce table=<name> protocol=<paper|bccd|synthetic> seeds=N`: a paper's table, rerun."""
from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from zoo.config.paths import CONF_DIR
from zoo.cli import reports_bad_input, suggests_keys


@suggests_keys("reproduce")
@hydra.main(config_path=CONF_DIR, config_name="reproduce", version_base="1.3")
@reports_bad_input("zoo-reproduce")
def main(cfg: DictConfig) -> None:
    from zoo.tables.reproduce import reproduce
    from zoo.tables.report import write_table
    from zoo.components import load_components

    load_components()
    table = OmegaConf.to_container(cfg.table, resolve=True)
    if cfg.launch != "here":
        _print_launch_commands(cfg, table)
        return
    rows = reproduce(table, cfg.protocol, int(cfg.seeds), cfg.out, list(cfg.overrides),
                     report_only=bool(cfg.report_only), reuse=bool(cfg.reuse), archive=cfg.archive)
    command = "zoo-reproduce " + " ".join(sys.argv[1:])
    paths = write_table(rows, table, cfg.protocol, int(cfg.seeds), cfg.out, command)
    print(Path(paths["md"]).read_text())
    print(f"wrote {paths['md']}, {paths['json']}, {paths['png']}")
    if cfg.archive:  # the table beside the runs it was made of
        for path in paths.values():
            shutil.copy(path, Path(cfg.archive) / Path(path).name)
        print(f"and copied them to {cfg.archive}")


def _print_launch_commands(cfg: DictConfig, table: dict) -> None:
    from zoo.tables.launch import launch_commands

    if cfg.report_only:
        raise ValueError("launch= prints the commands that train the runs; report_only=true (which trains nothing "
                         "and writes the table) goes without it")
    commands = launch_commands(cfg.launch, table, cfg.protocol, int(cfg.seeds), cfg.out, list(cfg.overrides),
                               reuse=bool(cfg.reuse), archive=cfg.archive)
    again = shlex.join(["zoo-reproduce", *(a for a in sys.argv[1:] if not a.startswith("launch="))])
    bin_dir = Path(sys.executable).parent  # where this environment's zoo-* commands are: the script needs no venv active
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    if cfg.launch == "slurm":
        _write_slurm_script(cfg, table, commands, again, bin_dir)
        return
    script = Path(cfg.out) / f"launch_{cfg.launch}.sh"
    script.write_text(f"#!/usr/bin/env bash\n# What table {table['name']} ({cfg.protocol}) still lacks, a line per "
                      f"{'run' if cfg.launch == 'commands' else 'row'}: run them in any order, in parallel too.\n"
                      f"# Then `{again}` reads the runs back and writes the table.\n"
                      f"export PATH={shlex.quote(str(bin_dir))}:\"$PATH\"  # the zoo-* commands that wrote this\n"
                      + "".join(f"{c}\n" for c in commands))
    script.chmod(0o755)
    print(script.read_text() + ("" if commands else "# nothing to train: every run is finished\n")
          + f"wrote {script}")

def _write_slurm_script(cfg: DictConfig, table: dict, commands: list[str], again: str, bin_dir: Path) -> None:
    from zoo.tables.launch import slurm_array_script

    script = Path(cfg.out) / "launch_slurm.sbatch"
    if not commands:
        print(f"# nothing to train: every run is finished; `{again}` writes the table")
        return
    script.write_text(slurm_array_script(commands, table["name"], cfg.out, bin_dir,
                                         OmegaConf.to_container(cfg.slurm, resolve=True)))
    print(script.read_text() + f"wrote {script}: `sbatch {script}` submits its {len(commands)} run(s) as one array "
          f"job; then `{again}` reads the runs back and writes the table")


if __name__ == "__main__":
    main()
