"""Where a figure comes from: the machine header every figure is printed under, and the code version."""
from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path

import torch


def machine(threads: int) -> str:
    """The header every benchmark prints before its figures: the CPU and the widest vector instructions torch uses
    on it (AVX2 or AVX512; two machines of one name can differ there, and speed with it), torch, threads."""
    return (f"machine: {_cpu_name()} ({torch.backends.cpu.get_cpu_capability()}), torch {torch.__version__}, "
            f"{threads} threads")


@functools.cache
def code_version() -> str:
    """The commit of the zoo checkout a figure comes from, '+changes' added when its code or configs differ from
    that commit; outside a checkout, the commit a `git archive` copy was made from (zoo/COMMIT, filled in by
    git's export-subst, see .gitattributes) with ' (archive)', else 'unknown'. Recorded beside each run's figures, so
    a table whose runs span code changes says so."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return _archived_commit(root / "zoo" / "COMMIT")
    git = ["git", "-C", str(root)]
    try:
        sha = subprocess.run([*git, "rev-parse", "--short=7", "HEAD"], capture_output=True, text=True, timeout=30,
                             check=True).stdout.strip()
        changed = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no", "--", "zoo", "conf"],
                                 capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):  # no git on the machine, or a broken checkout
        return "unknown"
    return sha + ("+changes" if changed else "")


def _archived_commit(stamp: Path) -> str:
    try:
        commit = stamp.read_text().strip()
    except OSError:  # an installed copy: the stamp is not package data
        return "unknown"
    if not commit or commit.startswith("$Format"):  # a copy made otherwise than by `git archive`: never filled in
        return "unknown"
    return f"{commit} (archive)"


def _cpu_name() -> str:
    try:  # Linux names the CPU model only in /proc/cpuinfo; platform.processor() is often empty there
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
