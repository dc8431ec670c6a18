"""One run object: a run config parsed and validated once, from a composed config or one stored in a checkpoint,
and handed to whatever needs it (the trainer, the loaders, the tools that load a trained run)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from zoo.config.paths import PROJECT

from zoo.config.ranges import check_ranges
from zoo.config.schema import (DataConfig, TrainerConfig, batch_size_divisor, model_node, stored_run_config,
                               validate_section)


@dataclass(frozen=True)
class RunConfig:
    """``cfg`` is the whole config; ``trainer`` and ``data`` are its sections merged onto their schemas (defaults
    filled in, types checked, a misspelt key refused)."""
    cfg: DictConfig
    trainer: DictConfig
    data: DictConfig

    @classmethod
    def from_composed(cls, cfg: DictConfig) -> RunConfig:
        """A config composed for a new run (``zoo-train``): every key is checked, its type and its range."""
        root_in_project(cfg)
        _smoke_settings(cfg)
        run = cls(cfg, validate_section(cfg, "trainer", TrainerConfig), validate_section(cfg, "data", DataConfig))
        check_ranges({"seed": cfg.get("seed"), "trainer": run.trainer, "data": run.data, "model": cfg.get("model")})
        return run

    @classmethod
    def from_stored(cls, stored: Any, data_root: str | None = None,
                    data_overrides: Mapping[str, Any] | None = None, where: Any = "a stored run") -> RunConfig:
        """The config a checkpoint or an archived run stored (YAML text or a mapping), in today's keys
        (``stored_run_config``). Trainer keys that this code no longer has are left out: they trained the run but
        nothing reads them now. ``data_root`` repoints every path of its data (the run's folder moved);
        ``data_overrides`` merge into its ``data`` node (e.g. ``{"val": {"ignore_below_size": 16}}``); ``where``
        names the checkpoint in errors."""
        cfg = stored_run_config(stored, where)
        with open_dict(cfg):
            if data_root:
                _reroot(cfg.data, data_root)
            if data_overrides:
                cfg.data = OmegaConf.merge(cfg.data, data_overrides)
            if cfg.get("data") is not None and "eval_images" in cfg.data:
                cfg.data.eval_images = None  # the training run's quick look; a loaded run scores its whole split
            known = set(OmegaConf.structured(TrainerConfig))
            trainer = {k: v for k, v in OmegaConf.to_container(cfg.get("trainer") or {}).items() if k in known}
        trainer = OmegaConf.merge(OmegaConf.structured(TrainerConfig), trainer)
        return cls(cfg, trainer, validate_section(cfg, "data", DataConfig))

    @property
    def model(self) -> DictConfig:
        """The model node: the detector's arguments and its input pipeline (name, input_size, transforms...)."""
        return self.cfg.model

    @property
    def name(self) -> str | None:
        return self.cfg.model.get("name")

    @property
    def detector(self) -> dict[str, Any]:
        """The detector's constructor arguments (the model node without its pipeline keys)."""
        return model_node(self.cfg.model)

    @property
    def batch_divisor(self) -> int:
        """What a batch's height and width are padded to a multiple of (the data's and the model's divisors)."""
        return batch_size_divisor(self.data, self.cfg.model)

    @property
    def input_mean(self) -> list[float]:
        """The pixel mean images are normalised with (RGB, 0-255): the model's own where it has one, else the data's."""
        return list(self.cfg.model.get("input_mean") or self.data.mean)

    @property
    def input_std(self) -> list[float]:
        return list(self.cfg.model.get("input_std") or self.data.std)

    @property
    def channels_last(self) -> bool:
        """Whether the run trained in the channels-last layout: its checkpoint is tested in the same one, so the
        recorded figure is reproduced exactly."""
        return bool(self.trainer.channels_last)

    @property
    def seed(self) -> int:
        return int(self.cfg.get("seed", 0))

    def scored_split(self, split: str) -> str:
        """The split actually read for ``split``: data without a test node is tested on val."""
        return split if split != "test" or self.data.get("test") else "val"


SMOKE = {"trainer.max_iters": 20, "data.eval_images": 16, "trainer.plots": False, "trainer.tensorboard": False}


def _smoke_settings(cfg: DictConfig) -> None:
    """``trainer.smoke=true``: the settings of a smoke run, each where the config leaves it at its default."""
    if not OmegaConf.select(cfg, "trainer.smoke", default=False):
        return
    with open_dict(cfg):
        for key, value in SMOKE.items():
            if key in ("trainer.plots", "trainer.tensorboard") or OmegaConf.select(cfg, key, default=None) is None:
                OmegaConf.update(cfg, key, value, force_add=True)


def root_in_project(cfg: DictConfig) -> None:
    """A relative ``data.root`` (``../shared/datasets/bccd`` in conf/data) names a folder beside the project, not
    below whichever folder a command runs from: made absolute against the project, so the stored config holds it
    absolute too."""
    root = OmegaConf.select(cfg, "data.root", default=None)
    if isinstance(root, str) and root and not Path(root).is_absolute():
        with open_dict(cfg):
            cfg.data.root = str((PROJECT / root).resolve())


def _reroot(data: DictConfig, root: str) -> None:
    """Stored configs hold resolved paths: swap the old ``data.root`` folder for the new one in every
    path of every split (VOC ``root``, one or a list, COCO ``ann_file`` and ``image_dir``)."""
    old = data.get("root")
    if not old:
        raise ValueError("data_root: the stored data config has no 'root' to replace")
    old = old.rstrip("/")

    def moved(value):
        if isinstance(value, str) and (value == old or value.startswith(old + "/")):
            return root + value[len(old):]
        return value

    data.root = root
    for split in ("train", "val", "test"):
        node = data.get(split)
        for key, value in (node or {}).items():
            node[key] = [moved(v) for v in value] if isinstance(value, ListConfig) else moved(value)
