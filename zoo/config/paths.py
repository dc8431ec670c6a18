"""Where the configs live: conf/ beside the package in the source tree (installed with `pip install -e .`), and the
project a relative data root is taken from."""
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

PROJECT = Path(__file__).resolve().parents[2]  # the checkout: relative data roots are taken from here
CONF_DIR = str(PROJECT / "conf")


def root_in_project(cfg: DictConfig) -> None:
    """A relative ``data.root`` (``../shared/datasets/bccd`` in conf/data) names a folder beside the project, not
    below whichever folder a command runs from: made absolute against the project, so the stored config holds it
    absolute too."""
    root = OmegaConf.select(cfg, "data.root", default=None)
    if isinstance(root, str) and root and not Path(root).is_absolute():
        with open_dict(cfg):
            cfg.data.root = str((PROJECT / root).resolve())
