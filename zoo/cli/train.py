"""`zoo-train model=ssd_lite data=synthetic trainer.max_epochs=...`: train, evaluate, write results.json."""
from __future__ import annotations

import os

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from zoo.config.paths import CONF_DIR
from zoo.cli import reports_bad_input, suggests_keys


@suggests_keys("train")
@hydra.main(config_path=CONF_DIR, config_name="train", version_base="1.3")
@reports_bad_input("zoo-train")
def main(cfg: DictConfig) -> float | None:
    from zoo.components import load_components
    from zoo.engine.resume import config_to_resume
    from zoo.engine.trainer import Trainer

    load_components()
    hydra_cfg = HydraConfig.get()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and hydra_cfg.mode == RunMode.RUN and not any(
            o.startswith("hydra.run.dir=") for o in hydra_cfg.overrides.hydra):
        # Each rank resolves the default ${now:...} folder itself: ranks starting a second apart would split the run.
        raise ValueError("under torchrun, name the run folder with hydra.run.dir=<folder> so every rank shares it")
    with open_dict(cfg):
        cfg.overrides = list(hydra_cfg.overrides.task)
    if cfg.get("resume"):  # the run's own config: its original overrides need not be repeated
        cfg = config_to_resume(cfg, hydra_cfg.overrides.task, hydra_cfg.runtime.output_dir)
    results = Trainer(cfg, hydra_cfg.runtime.output_dir).fit()
    return results.get("metrics", {}).get(results.get("primary_metric"))  # the sweep objective (None off rank 0)


if __name__ == "__main__":
    main()
