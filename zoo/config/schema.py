"""Schemas for the run config: a misspelt key fails before anything is built, naming the key.

Component nodes (model parts, datasets, transforms, evaluators) are checked by their registries
against the constructors' signatures; the plain settings below are checked here."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from zoo.registry import ConfigError

# Keys of a model node that describe its input pipeline rather than the detector's constructor.
# ``input_mean``/``input_std`` (RGB, 0-255): a model's own normalisation, which the data's mean and std give way to (an
# imported detector keeps the one it was trained with, whatever data it is then run on).
# ``init_from``: a checkpoint whose fitting weights a new run starts from (zoo.engine.init_from).
# ``proposals``: where a detector of given proposals (Fast R-CNN, SPP-net, R-CNN) gets them on a split whose data
# names none (``data.<split>.proposals``): a method computed once per split and cached (selective_search).
MODEL_META_KEYS = ("name", "input_size", "transforms", "pad_fill", "size_divisor", "input_mean", "input_std",
                   "init_from", "proposals")


DEFAULT_HOOKS = ("stages", "nan_guard", "progress", "metrics", "validation", "checkpoint", "report")


@dataclass
class TrainerConfig:
    max_epochs: int = 12
    max_iters: Optional[int] = None  # stop early after this many iterations (smoke runs, budgets)
    batch_size: int = 32
    optimizer: dict[str, Any] = field(default_factory=dict)  # from the trainer/optimizer group
    schedule: dict[str, Any] = field(default_factory=dict)  # from the trainer/schedule group
    grad_clip: Optional[float] = None  # max global grad norm
    loss_weights: dict[str, float] = field(default_factory=dict)  # e.g. {ssd/loc: 1.0}
    # Stages by fraction of the run: {name, fraction, train: [top-level modules], losses: [key prefixes]}
    # (trainer/stages=four_step: Faster R-CNN's alternating training); empty: everything, throughout.
    stages: list[dict[str, Any]] = field(default_factory=list)
    amp: bool = True  # autocast training steps: amp_dtype on CUDA, bfloat16 on a CPU with bfloat16 instructions, else fp32
    amp_dtype: str = "float16"  # on CUDA: float16 (with a grad scaler) or bfloat16 (or fp16, bf16, as zoo-eval's precision)
    channels_last: bool = True  # NHWC activations: faster convolutions on CPU (oneDNN) and tensor cores
    eval_every: int = 1  # epochs between evaluations on the val split; 0: only at the end
    log_every: int = 20  # iterations between metrics.jsonl lines
    checkpoint_every: int = 0  # extra last.pt saves every N iterations within an epoch; each epoch's end always saves
    progress: bool = True
    tensorboard: bool = True
    plots: bool = True
    # What the trainer does around its loop, in order (zoo.engine.hooks): each a registered hook's name or
    # {type: name, ...}. Dropping one drops its job (no 'validation': no val scores and no best.pt).
    hooks: list[Any] = field(default_factory=lambda: list(DEFAULT_HOOKS))
    # A smoke run, to see a config train and evaluate end to end in seconds: max_iters 20 and data.eval_images 16
    # unless given, no plots, no TensorBoard. Its figures are a check that it runs, not results.
    smoke: bool = False


@dataclass
class DataConfig:
    name: str = "???"
    root: Optional[str] = None  # the data set's folder, interpolated into the split nodes
    classes: Optional[list[str]] = None  # class names, for data sets that take them from config
    train: dict[str, Any] = field(default_factory=dict)
    val: dict[str, Any] = field(default_factory=dict)
    test: Optional[dict[str, Any]] = None  # defaults to val
    mean: list[float] = field(default_factory=lambda: [123.675, 116.28, 103.53])
    std: list[float] = field(default_factory=lambda: [58.395, 57.12, 57.375])
    size_divisor: int = 1
    num_workers: int = 2
    # Keep the training images in memory once loaded (num_images x H x W x 3 bytes in each loading process):
    # later epochs skip decoding or drawing them. The samples are the same either way.
    cache: bool = False
    # Score val and test on their first N images only (null: all of them): a short run's quick look, not a figure
    # to compare with others.
    eval_images: Optional[int] = None
    # Keyed by transform type and merged into the model's train transform of that type, since
    # augmentation strength depends on the data: synthetic shapes already span every scale, so they
    # set {ssd_train: {expand: false, min_iou_crop: false}}; other recipes are left as they are.
    augment: dict[str, Any] = field(default_factory=dict)


def register_schemas() -> None:
    """Make ``trainer/base`` and ``data/base`` available as schema defaults for the config groups:
    a group file lists ``- base`` first, so an override of a misspelt key fails at compose time."""
    store = ConfigStore.instance()
    store.store(group="trainer", name="base", node=TrainerConfig)
    store.store(group="data", name="base", node=DataConfig)


register_schemas()


def run_dir_for(out: str | None, default: str, names: str = "folder") -> str:
    """A command's Hydra run folder: under ``out`` when the user names one (``out`` names a folder, or with
    ``names=file`` a file whose folder takes it), so that everything a command writes lands there; else ``default``."""
    if out is None or out == "":
        return default
    # a file named as the folder: its folder (the command then says what is wrong)
    return str(Path(out).parent) if names == "file" or Path(out).is_file() else str(out)


if not OmegaConf.has_resolver("zoo_run_dir"):
    OmegaConf.register_new_resolver("zoo_run_dir", run_dir_for)


def validate_section(cfg: DictConfig, key: str, schema: type) -> DictConfig:
    """Merge ``cfg[key]`` onto its schema; unknown keys and wrong types raise ConfigError."""
    try:
        # Resolve in the full config first: split nodes interpolate keys such as ${data.root}.
        merged = OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.to_container(cfg[key], resolve=True))
    except OmegaConfBaseException as err:
        raise ConfigError(f"config section '{key}': {err.msg if hasattr(err, 'msg') else err}") from err
    return merged


def _interpolations(node: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(node, dict):
        return [found for key, value in node.items() for found in _interpolations(value, f"{prefix}{key}.")]
    if isinstance(node, list):
        return [found for i, value in enumerate(node) for found in _interpolations(value, f"{prefix}{i}.")]
    return [(prefix.rstrip("."), node)] if isinstance(node, str) and "${" in node else []


def batch_size_divisor(data_cfg: Any, model_cfg: Any) -> int:
    """What a batch's height and width are padded to a multiple of: the data's ``size_divisor`` and the model's
    own (FPN's 32, so every pyramid level is exactly half the one below, as Detectron pads), whichever both
    divide."""
    return math.lcm(int(data_cfg.get("size_divisor", 1) or 1), int(model_cfg.get("size_divisor", 1) or 1))


def model_node(model_cfg: Any) -> dict[str, Any]:
    """The detector's constructor arguments: the model node without its pipeline keys."""
    keys = [k for k in model_cfg if k not in MODEL_META_KEYS]
    if isinstance(model_cfg, DictConfig):
        return {k: OmegaConf.to_container(model_cfg[k], resolve=True) if OmegaConf.is_config(model_cfg[k])
                else model_cfg[k] for k in keys}
    return {k: model_cfg[k] for k in keys}


def stored_run_config(stored: Any, where: Any = "a stored run") -> DictConfig:
    """A run config stored by a checkpoint or an archived run (``where``, named in errors), in today's keys: the keys
    that moved since it was written are moved, so old runs still load, resume and compare as the runs they were.
    - multibox ``neg_pos_ratio``/``min_negatives`` -> its ``sampler: {type: hard_negative, ...}``.
    A config that is not plain YAML (a tag) or still holds an interpolation (a stored config is saved resolved: one
    there, such as ``${oc.env:...}``, was put in by hand and would read this machine's values) is refused."""
    try:
        cfg = OmegaConf.create(OmegaConf.to_container(stored) if OmegaConf.is_config(stored) else stored)
    except Exception as error:  # yaml and OmegaConf raise several kinds for text that is not a plain config
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"{where}: its stored config cannot be read as plain YAML ({first})") from None
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{where}: its stored config is not a mapping of settings")
    interpolated = _interpolations(OmegaConf.to_container(cfg, resolve=False))
    if interpolated:
        key, value = interpolated[0]
        raise ConfigError(f"{where}: its stored config holds an interpolation at {key} ({value!r}); stored configs are "
                          "saved resolved, so this one was edited by hand: refused")
    loss = OmegaConf.select(cfg, "model.loss")
    if isinstance(loss, DictConfig) and loss.get("type") == "multibox" and "sampler" not in loss:
        with open_dict(loss):
            moved = {key: loss.pop(key) for key in ("neg_pos_ratio", "min_negatives") if key in loss}
            loss.sampler = {"type": "hard_negative", **moved}
    return cfg
