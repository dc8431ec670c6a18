"""Renaming another library's tensors to zoo's names, and checking they fit zoo's model, with one-line errors naming the
file and the first offending key."""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Union

import torch

Replacement = Union[str, Callable[[re.Match], str]]


class ImportError_(ValueError):  # noqa: N801 - not the builtin ImportError: a checkpoint that does not fit
    """A checkpoint that is not the model it is said to be: a key no rule maps, a tensor missing, a shape that
    differs. The message names the file and the first offending key."""


@dataclass(frozen=True)
class KeyMap:
    """``rules``: (regex, replacement) pairs tried in order with ``re.fullmatch`` on each source key, the first that
    matches renames it (a template with ``\\1`` groups, or a function of the match); ``drop``: regexes of source keys
    zoo keeps nothing for (BatchNorm's ``num_batches_tracked``, a training-only layer)."""
    rules: Sequence[tuple[str, Replacement]]
    drop: Sequence[str] = ()

    def zoo_name(self, key: str) -> str | None:
        """The zoo name of ``key``; None where it is dropped; KeyError where no rule knows it."""
        if any(re.fullmatch(pattern, key) for pattern in self.drop):
            return None
        for pattern, replacement in self.rules:
            match = re.fullmatch(pattern, key)
            if match:
                return replacement(match) if callable(replacement) else match.expand(replacement)
        raise KeyError(key)

    def rename(self, state: Mapping[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for key, value in state.items():
            try:
                name = self.zoo_name(key)
            except KeyError:
                raise ImportError_(f"{where}: key '{key}' is not one this model has (another model's checkpoint?)") \
                    from None
            if name is None:
                continue
            if name in out:
                raise ImportError_(f"{where}: keys map twice onto zoo's '{name}' (the second is '{key}')")
            out[name] = value
        return out


def check_fit(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], where: str) -> None:
    """Every tensor zoo's model has is there with its shape, and nothing else (buffers zoo recomputes, such as
    ``num_batches_tracked``, may be absent)."""
    for name, value in expected.items():
        if name not in state:
            if name.endswith("num_batches_tracked"):
                continue
            raise ImportError_(f"{where}: tensor for zoo's '{name}' is missing (a checkpoint of another model, or cut "
                               "short?)")
        if tuple(state[name].shape) != tuple(value.shape):
            raise ImportError_(f"{where}: '{name}' has shape {tuple(state[name].shape)}, the model needs "
                               f"{tuple(value.shape)} (another variant or class count?)")
    extra = [name for name in state if name not in expected]
    if extra:
        raise ImportError_(f"{where}: '{extra[0]}' has no place in zoo's model ({len(extra)} such tensor(s))")


def keep_rows(tensor: torch.Tensor, keep: Sequence[int], group: int) -> torch.Tensor:
    """Dim 0 seen as consecutive groups of ``group`` rows (one per anchor, or one per class): keep the rows at
    ``keep`` within each group, in that order (drops unused classes, moves background first)."""
    rows = tensor.shape[0]
    if rows % group:
        raise ValueError(f"{rows} rows do not split into groups of {group}")
    index = torch.tensor([g * group + k for g in range(rows // group) for k in keep])
    return tensor.index_select(0, index)


def background_first(tensor: torch.Tensor, group: int) -> torch.Tensor:
    """Per group of ``group`` class rows, the last (a background kept last, as detectron2 and MMDetection do) moved
    first (zoo's)."""
    return keep_rows(tensor, [group - 1, *range(group - 1)], group)


def with_background_box_rows(tensor: torch.Tensor) -> torch.Tensor:
    """Class-specific box regression without a background row (4 x classes rows) -> zoo's 4 x (classes + 1): four zero
    rows first, which inference never reads."""
    return torch.cat([tensor.new_zeros((4, *tensor.shape[1:])), tensor])
