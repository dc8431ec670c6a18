"""`zoo-visualize checkpoint=...`: predictions and ground truth drawn on sample images, one PNG grid."""
from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from zoo.config.paths import CONF_DIR
from zoo.cli import reports_bad_input, suggests_keys


@suggests_keys("visualize")
@hydra.main(config_path=CONF_DIR, config_name="visualize", version_base="1.3")
@reports_bad_input("zoo-visualize")
def main(cfg: DictConfig) -> None:
    from zoo.apis.visualize import visualize_checkpoint
    from zoo.components import load_components

    load_components()
    out = cfg.out or str(Path(HydraConfig.get().runtime.output_dir) / "predictions.png")
    path = visualize_checkpoint(cfg.checkpoint, out, cfg.split, cfg.num_images, cfg.score_threshold, cfg.tile,
                                cfg.device, cfg.data_root,
                                OmegaConf.to_container(cfg.tta, resolve=True) if cfg.get("tta") else None)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
