"""Pretrained weights for a backbone: a local file, or torchvision's ImageNet weights by name, read from torch's
cache (``$TORCH_HOME/hub/checkpoints``) and fetched into it only where the machine can reach the internet."""
from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.error import URLError

import torch
from torchvision.models import get_model_weights

# The classic ImageNet weights detectors start from (torchvision's detection models use these, not the newer V2).
IMAGENET = "imagenet"
OFFLINE_ENV = "ZOO_OFFLINE"  # set to 1: never try to fetch, only read the cache


class WeightsNotCachedError(FileNotFoundError):
    """Weights named by torchvision's enum are neither in torch's cache nor reachable."""


def is_named(spec: str) -> bool:
    """Whether ``spec`` names torchvision weights (``imagenet``, ``IMAGENET1K_V1``, ``ResNet50_Weights.IMAGENET1K_V2``)
    rather than a file."""
    return spec == IMAGENET or re.fullmatch(r"([A-Za-z0-9]+_Weights\.)?[A-Z][A-Z0-9_]*", spec) is not None


def named_weights(spec: str, arch: str, what: str):
    """The torchvision weights enum member ``spec`` names for the model builder ``arch`` (``vgg16``, ``resnet50``);
    ``imagenet`` is IMAGENET1K_V1. A name of another model's weights fails naming the ones ``arch`` has."""
    enum = get_model_weights(arch)
    choices = [f"{enum.__name__}.{w.name}" for w in enum]
    member = "IMAGENET1K_V1" if spec == IMAGENET else spec
    prefix, _, name = member.rpartition(".")
    if prefix and prefix != enum.__name__ or name not in enum.__members__:
        raise ValueError(f"{what}: weights '{spec}' are not {arch}'s; choose a local file, '{IMAGENET}' or one of "
                         f"{choices}")
    return enum[name]


def cached_file(weights) -> Path:
    """Where torch's hub keeps the file of ``weights`` (a torchvision weights enum member)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name


def named_state_dict(spec: str, arch: str, what: str) -> dict[str, torch.Tensor]:
    """The state dict of the named weights: from the cache; else fetched into it (unless ``ZOO_OFFLINE=1``); else
    one line naming the file and the folder to put it in."""
    weights = named_weights(spec, arch, what)
    path = cached_file(weights)
    if not path.is_file():
        fetch(weights, path, what)
    return torch.load(path, map_location="cpu", weights_only=True)


def check_named(spec: str, arch: str, what: str) -> None:
    """A preflight's check of named weights: the name is ``arch``'s, and offline its file is in the cache."""
    weights = named_weights(spec, arch, what)
    path = cached_file(weights)
    if not path.is_file() and os.environ.get(OFFLINE_ENV) == "1":
        raise _not_cached(weights, path, what, f"{OFFLINE_ENV}=1")


def fetch(weights, path: Path, what: str) -> None:
    if os.environ.get(OFFLINE_ENV) == "1":
        raise _not_cached(weights, path, what, f"{OFFLINE_ENV}=1")
    try:
        torch.hub.load_state_dict_from_url(weights.url, progress=True, check_hash=True)
    except (URLError, OSError, RuntimeError) as error:  # no network, a proxy refusing, a hash mismatch
        raise _not_cached(weights, path, what, f"fetching it failed: {type(error).__name__}") from None


def _not_cached(weights, path: Path, what: str, why: str) -> WeightsNotCachedError:
    return WeightsNotCachedError(f"{what}: weights {type(weights).__name__}.{weights.name} are not cached ({why}); "
                                 f"put {path.name} (from {weights.url}) in {path.parent}")
