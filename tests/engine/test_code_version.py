"""Each run records the commit it trained with, so tables that span code changes can say so."""
import subprocess
from pathlib import Path

import pytest

from zoo.engine import timing


@pytest.mark.skipif(not (Path(timing.__file__).resolve().parents[2] / ".git").exists(), reason="not a git checkout")
def test_a_checkout_records_its_commit_and_whether_the_code_differs_from_it():
    root = Path(timing.__file__).resolve().parents[2]
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=7", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    changed = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", "zoo",
                              "conf"], capture_output=True, text=True, check=True).stdout.strip()
    timing.code_version.cache_clear()
    assert timing.code_version() == head + ("+changes" if changed else "")


def test_a_copy_outside_a_checkout_says_unknown(tmp_path, monkeypatch):
    monkeypatch.setattr(timing, "__file__", str(tmp_path / "zoo" / "engine" / "timing.py"))
    timing.code_version.cache_clear()
    try:
        assert timing.code_version() == "unknown"
    finally:
        timing.code_version.cache_clear()
