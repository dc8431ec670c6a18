"""`zoo-export checkpoint=...`: a trained detector as one torch.export program (.pt2), checked before it is written."""
from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from zoo.config.paths import CONF_DIR
from zoo.cli import reports_bad_input, suggests_keys


@suggests_keys("export")
@hydra.main(config_path=CONF_DIR, config_name="export", version_base="1.3")
@reports_bad_input("zoo-export")
def main(cfg: DictConfig) -> None:
    from zoo.apis.export import export_checkpoint
    from zoo.components import load_components

    load_components()
    info = export_checkpoint(cfg)
    shape = "x".join(map(str, info["input_shape"]))
    print(f"exported in {info['export_seconds']} s, input {shape}; the program reproduces the model on "
          f"{info['checked_on']}: {info['program']} (what goes in and out: {Path(info['program']).with_suffix('.json')})")


if __name__ == "__main__":
    main()
