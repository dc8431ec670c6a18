"""Errors and warnings about bad input data, and the tally that reports skipped items once."""
from __future__ import annotations

import warnings


class DataError(ValueError):
    """Input data (an annotation file, an image, a class name) cannot be used as given."""


class DataWarning(UserWarning):
    """Input data was repaired or skipped; training goes on without it."""


class Tally:
    """Counts skipped items over a whole data set so the user reads one line, not one per file."""

    def __init__(self, what: str):
        self.what = what  # e.g. "dropped {n} boxes with zero or negative area"
        self.files: list[str] = []
        self.count = 0

    def add(self, file: str, n: int = 1) -> None:
        if n > 0:
            self.count += n
            if file not in self.files:
                self.files.append(file)

    def warn(self, dataset: str, max_files: int = 5) -> None:
        if not self.count:
            return
        shown = ", ".join(self.files[:max_files])
        more = f" and {len(self.files) - max_files} more" if len(self.files) > max_files else ""
        warnings.warn(f"{dataset}: {self.what.format(n=self.count)} ({shown}{more})", DataWarning, stacklevel=2)
