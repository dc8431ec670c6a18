"""Reading pickles of numpy arrays without running code they might hold: an unpickler that admits numpy's array
machinery and plain builtin containers only (detectron2's checkpoints, proposal files)."""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}
_BUILTINS = {"dict", "list", "tuple", "set", "frozenset", "str", "bytes", "int", "float", "bool", "complex", "slice"}


class UnsafePickleError(ValueError):
    """A pickle holding something other than numpy arrays and builtins: refused before it is built."""


class _ArraysOnly(pickle.Unpickler):
    def __init__(self, file, where: str):
        super().__init__(file, encoding="latin1")  # Python 2 pickles (Detectron's) hold byte strings
        self.where = where

    def find_class(self, module: str, name: str):
        if (module, name) in _NUMPY_GLOBALS or module in ("builtins", "__builtin__") and name in _BUILTINS:
            return super().find_class(module, name)
        raise UnsafePickleError(f"{self.where}: the pickle holds '{module}.{name}', not only numpy arrays and "
                                "builtins; refused (unpickling it could run code)")


def load_arrays_pickle(path: str | Path, where: str) -> Any:
    """The pickle at ``path``, refused (UnsafePickleError) if it holds anything but arrays and builtins; a file that is
    not a readable pickle fails as a ValueError naming ``where``."""
    try:
        with open(path, "rb") as file:
            return _ArraysOnly(file, where).load()
    except UnsafePickleError:
        raise
    except Exception as error:  # a truncated or foreign file: pickle raises any of a dozen types
        raise ValueError(f"{where}: not a readable pickle ({type(error).__name__}: {error})") from None
