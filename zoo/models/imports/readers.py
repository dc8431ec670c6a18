"""Reading other libraries' checkpoint files without running code they might hold: torch files with ``weights_only``,
detectron2's ``.pkl`` with an unpickler that admits numpy arrays and plain containers only."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from zoo.models.imports.keys import ImportError_
from zoo.utils.safe_pickle import load_arrays_pickle

def read_detectron2_pkl(path: str | Path) -> dict[str, torch.Tensor]:
    """A detectron2 model-zoo ``.pkl``: ``{"model": {name: numpy array}, "__author__": ...}`` (or the bare dict)."""
    where = _exists(path)
    data = load_arrays_pickle(path, where)
    if isinstance(data, Mapping) and "blobs" in data and "model" not in data:
        raise ImportError_(f"{where}: a Caffe2/Detectron (v1) pickle with 'blobs'; convert it with detectron2 first")
    model = data.get("model", data) if isinstance(data, Mapping) else data
    if not isinstance(model, Mapping):
        raise ImportError_(f"{where}: expected a dict of arrays (detectron2's {{'model': ...}}), got "
                           f"{type(model).__name__}")
    return _tensors(model, where, np.ndarray, lambda key, value: (str(key), torch.from_numpy(np.ascontiguousarray(value))))


def read_torch_state(path: str | Path) -> dict[str, torch.Tensor]:
    """A ``torch.save`` file holding a state dict: bare, or under ``state_dict`` (MMDetection) or ``model``
    (torchvision's reference scripts, detectron2's ``.pth``); a ``module.`` prefix (DataParallel) is removed."""
    where = _exists(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and weights-only errors alike
        first = str(error).splitlines()[0] if str(error) else ""
        raise ImportError_(f"{where}: not a torch file of tensors ({type(error).__name__}: {first})") from None
    if isinstance(data, Mapping):
        for wrapper in ("state_dict", "model"):
            if isinstance(data.get(wrapper), Mapping):
                data = data[wrapper]
                break
    if not isinstance(data, Mapping) or not data:
        raise ImportError_(f"{where}: expected a state dict (names to tensors), got "
                           f"{'an empty dict' if isinstance(data, Mapping) else type(data).__name__}")
    return _tensors(data, where, torch.Tensor, lambda key, value: (key.removeprefix("module."), value))


def _tensors(items: Mapping, where: str, kind: type, convert) -> dict[str, torch.Tensor]:
    """Every value of ``items`` must be a ``kind``; ``convert(key, value)`` gives its (name, tensor)."""
    out = {}
    for key, value in items.items():
        if not isinstance(value, kind):
            raise ImportError_(f"{where}: '{key}' is a {type(value).__name__}, not a {kind.__module__}.{kind.__name__}")
        name, tensor = convert(key, value)
        out[name] = tensor
    return out


def _exists(path: str | Path) -> str:
    where = f"weights file '{path}'"
    if not Path(path).is_file():
        raise FileNotFoundError(f"{where} not found")
    return where
