"""The config a resumed run continues with: the one stored in the checkpoint it continues, so that
``zoo-train resume=true hydra.run.dir=<run>`` needs none of the run's original overrides."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from zoo.config.compare import run_config_differences
from zoo.config.schema import stored_run_config
from zoo.engine.checkpoint import load_checkpoint


GLOBAL_GROUPS = ("experiment",)  # conf groups packaged _global_: they set keys all over the config, none of their own


def override_keys(overrides: Sequence[str]) -> list[str]:
    """The config keys a command's overrides set (``trainer/optimizer=sgd`` sets ``trainer.optimizer``)."""
    keys = []
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~").replace("/", ".")
        if key and key not in ("resume", "overrides") and not key.startswith("hydra"):
            keys.append(key)
    return keys


def config_to_resume(cfg: DictConfig, overrides: Sequence[str], run_dir: str | Path) -> DictConfig:
    """``cfg`` composed with ``resume`` set: the stored config of the checkpoint it names (``true``: the run
    folder's last.pt), with the values this command's ``overrides`` give. The trainer then refuses, naming them, the
    keys in which that differs from the run (only what changes how a run is shown or saved may differ). Without a
    checkpoint there, ``cfg`` as it is: the trainer says what is missing."""
    path = Path(run_dir) / "checkpoints" / "last.pt" if cfg.resume is True else Path(str(cfg.resume))
    if not path.is_file():
        return cfg
    stored = stored_run_config(load_checkpoint(path, required=("config",))["config"], f"resume: checkpoint '{path}'")
    keys = override_keys(overrides)
    spread = [key for key in keys if key in GLOBAL_GROUPS]
    if spread:  # a group packaged _global_ (experiment=) sets keys all over the config: compare all of it
        differ = run_config_differences(cfg, stored, shared_only=True)
        if differ:
            raise ValueError(f"resume: {', '.join(spread)}= composes a config that differs from the run in {path} in "
                             f"{differ}; drop it: a resumed run takes its config from its checkpoint")
    with open_dict(stored):
        for key in keys:
            if key in spread:
                continue
            value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
            OmegaConf.update(stored, key, OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value)
                             else value, merge=False, force_add=True)
        stored.resume = cfg.resume
        stored.device = cfg.get("device", "auto")
        stored.overrides = list(stored.get("overrides") or [])  # the run's own, as its results record them
    return stored
