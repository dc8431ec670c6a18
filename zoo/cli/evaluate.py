"""`zoo-eval checkpoint=...`: score a checkpoint with the config it was trained with."""
from __future__ import annotations

import json
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from zoo.config.paths import CONF_DIR
from zoo.cli import reports_bad_input, suggests_keys


@suggests_keys("eval")
@hydra.main(config_path=CONF_DIR, config_name="eval", version_base="1.3")
@reports_bad_input("zoo-eval")
def main(cfg: DictConfig) -> None:
    from zoo.utils.files import write_text_atomically
    from zoo.apis.evaluate import evaluate_checkpoint
    from zoo.engine.distributed import barrier
    from zoo.components import load_components

    load_components()
    results = evaluate_checkpoint(cfg)
    if results is None:  # another rank than 0 under torchrun: rank 0 writes and prints
        barrier()  # the ranks leave together
        return
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    tables = results.pop("tables")
    write_text_atomically(out_dir / "results.json", json.dumps(results, indent=2))  # never half a file
    print("\n\n".join(tables))
    print(f"results: {out_dir / 'results.json'}")
    barrier()


if __name__ == "__main__":
    main()
