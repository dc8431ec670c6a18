"""`zoo-train model=ssd_lite data=synthetic trainer.max_epochs=...`: train, evaluate, write results.json."""
from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from zoo.cli import CONF_DIR


@hydra.main(config_path=CONF_DIR, config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    from zoo.engine.trainer import Trainer
    from zoo.registry import load_components

    load_components()
    hydra_cfg = HydraConfig.get()
    with open_dict(cfg):
        cfg.overrides = list(hydra_cfg.overrides.task)
    results = Trainer(cfg, hydra_cfg.runtime.output_dir).fit()
    metrics = results.get("metrics", {})
    return next(iter(metrics.values()), None)  # the sweep objective: the first evaluator's primary metric


if __name__ == "__main__":
    main()
