"""`zoo-predict checkpoint=... inputs=[...]`: a trained detector run on any images, detections as JSON."""
from __future__ import annotations

import json
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from zoo.config.paths import CONF_DIR
from zoo.cli import reports_bad_input, suggests_keys


@suggests_keys("predict")
@hydra.main(config_path=CONF_DIR, config_name="predict", version_base="1.3")
@reports_bad_input("zoo-predict")
def main(cfg: DictConfig) -> None:
    from zoo.utils.files import write_text_atomically
    from zoo.apis.predict import Predictor, as_json, draw_found
    from zoo.data.image_list import image_files
    from zoo.components import load_components

    load_components()
    inputs = OmegaConf.to_container(cfg.inputs) if OmegaConf.is_list(cfg.inputs) else [str(cfg.inputs)]
    files = image_files([str(path) for path in inputs])
    if not files:
        raise ValueError(f"inputs={inputs}: no image to predict on")
    out = Path(cfg.out or HydraConfig.get().runtime.output_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out={out} is a file; out names the folder predictions.json (and drawn/) go to")
    predictor = Predictor(cfg.checkpoint, cfg.device, OmegaConf.to_container(cfg.tta, resolve=True) if cfg.get("tta")
                          else None, cfg.score_threshold, cfg.batch_size, cfg.skip_bad, cfg.get("runtime"))
    found = predictor(files)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomically(out / "predictions.json", json.dumps(as_json(found), indent=1))
    if cfg.draw:
        draw_found(found, predictor.class_names, out / "drawn")
    total = sum(len(f["scores"]) for f in found if "error" not in f)
    unread = sum("error" in f for f in found)
    print(f"{total} detections scoring >= {cfg.score_threshold} on {len(files) - unread} images"
          + (f" ({unread} unreadable, listed with their error)" if unread else "") + f": {out / 'predictions.json'}"
          + (f"; drawn in {out / 'drawn'}" if cfg.draw else ""))


if __name__ == "__main__":
    main()
