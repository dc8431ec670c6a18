"""Configs composed from conf/ outside a command's own Hydra app (paper-table rows, named tta nodes)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from zoo.config.paths import CONF_DIR


def compose_config(config_name: str, overrides: Sequence[str]):
    """``conf/<config_name>.yaml`` composed with ``overrides``, as the command of that config would compose it."""
    if GlobalHydra.instance().is_initialized():  # inside zoo-reproduce's own Hydra app: same conf/ search path
        return compose(config_name, overrides=list(overrides))
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        return compose(config_name, overrides=list(overrides))


def named_tta(name: str) -> dict[str, Any]:
    """The ``tta`` config node conf/tta/<name>.yaml, as ``tta=<name>`` composes it for zoo-eval."""
    path = Path(CONF_DIR) / "tta" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ValueError(f"tta '{name}' is not a config in conf/tta; known: {', '.join(known)}")
    # composed as the group it is: defaults lists apply
    return OmegaConf.to_container(compose_config("eval", ["checkpoint=none", f"tta={name}"]).tta, resolve=True)
