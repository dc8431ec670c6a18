"""Each run records the commit it trained with, so tables that span code changes can say so."""
import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from zoo.utils import provenance


ROOT = Path(provenance.__file__).resolve().parents[2]
needs_checkout = pytest.mark.skipif(not (ROOT / ".git").exists(), reason="not a git checkout")


@pytest.fixture(autouse=True)
def fresh_code_version():
    provenance.code_version.cache_clear()  # it is cached per process: each test reads its own copy of the code
    yield
    provenance.code_version.cache_clear()


@needs_checkout
def test_a_checkout_records_its_commit_and_whether_the_code_differs_from_it():
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=7", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    changed = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "--", "zoo",
                              "conf"], capture_output=True, text=True, check=True).stdout.strip()
    assert provenance.code_version() == head + ("+changes" if changed else "")


def _copy_with_stamp(tmp_path, monkeypatch, stamp: str | None) -> None:
    (tmp_path / "zoo").mkdir()
    if stamp is not None:
        (tmp_path / "zoo" / "COMMIT").write_text(stamp)
    monkeypatch.setattr(provenance, "__file__", str(tmp_path / "zoo" / "engine" / "provenance.py"))


def test_a_git_archive_copy_names_the_commit_it_was_made_from(tmp_path, monkeypatch):
    _copy_with_stamp(tmp_path, monkeypatch, "7a9479e\n")
    assert provenance.code_version() == "7a9479e (archive)"


@pytest.mark.parametrize("stamp", [None, "$Format:%h$\n"], ids=["installed, no stamp", "copied by cp, not filled in"])
def test_a_copy_outside_a_checkout_without_a_filled_in_stamp_says_unknown(tmp_path, monkeypatch, stamp):
    _copy_with_stamp(tmp_path, monkeypatch, stamp)
    assert provenance.code_version() == "unknown"


@needs_checkout
def test_git_archive_fills_in_the_stamp_with_the_commit():
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    if subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", "HEAD:zoo/COMMIT"]).returncode != 0:
        pytest.skip("zoo/COMMIT is not committed yet")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD", "zoo/COMMIT"], capture_output=True,
                             check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        stamp = tar.extractfile("zoo/COMMIT").read().decode().strip()
    assert len(stamp) >= 7 and head.startswith(stamp)
