"""`zoo-reproduce table=<name> protocol=<paper|bccd|synthetic> seeds=N`: a paper's table, rerun."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from zoo.cli import CONF_DIR, reports_bad_input


@hydra.main(config_path=CONF_DIR, config_name="reproduce", version_base="1.3")
@reports_bad_input("zoo-reproduce")
def main(cfg: DictConfig) -> None:
    from zoo.engine.reproduce import reproduce, write_table
    from zoo.registry import load_components

    load_components()
    table = OmegaConf.to_container(cfg.table, resolve=True)
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


if __name__ == "__main__":
    main()
