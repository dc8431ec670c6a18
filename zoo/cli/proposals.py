"""`zoo-proposals method=selective_search data=<data> out=<file> [split=test] [mode=fast]` or
`zoo-proposals checkpoint=<two-stage run> out=<file> [split=test]`: a split's proposals as a file (zoo.apis.proposals)."""
from __future__ import annotations

import hydra
from omegaconf import DictConfig

from zoo.config.paths import CONF_DIR
from zoo.cli import reports_bad_input, suggests_keys


@suggests_keys("proposals")
@hydra.main(config_path=CONF_DIR, config_name="proposals", version_base="1.3")
@reports_bad_input("zoo-proposals")
def main(cfg: DictConfig) -> None:
    from zoo.apis.proposals import METHODS, write_selective_search, write_split_proposals
    from zoo.components import load_components
    from zoo.config.run import root_in_project

    method = cfg.method or ("rpn" if cfg.checkpoint else "selective_search")
    if method not in METHODS:
        raise ValueError(f"zoo-proposals: method={method}; expected one of {', '.join(METHODS)}")
    if method == "rpn":
        if not cfg.checkpoint:
            raise ValueError("zoo-proposals: method=rpn needs checkpoint=<a two-stage run's checkpoint>")
        load_components()
        info = write_split_proposals(cfg.checkpoint, cfg.out, cfg.split, method, cfg.max_proposals, cfg.batch_size,
                                     cfg.device, cfg.data_root, cfg.progress)
    else:
        if cfg.checkpoint:
            raise ValueError("zoo-proposals: method=selective_search reads a data set (data=...), not a checkpoint")
        root_in_project(cfg)  # a relative data root (conf/data) names a folder beside the project
        info = write_selective_search(cfg.get("data"), cfg.out, cfg.split, cfg.mode, cfg.max_proposals, cfg.progress,
                                    cfg.workers)
    print(f"{info['images']} images, {info['mean_proposals']:.0f} proposals each on average, "
          f"{info['seconds_per_image'] * 1000:.0f} ms per image (median): {info['file']}")


if __name__ == "__main__":
    main()
