"""A run folder held by one training process at a time, checked writable before training, cleared of the
temporary files a killed save leaves behind."""
from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import weakref
from pathlib import Path

log = logging.getLogger("zoo.train")

LOCK = ".lock"


class RunFolderBusy(ValueError):
    """Another live process trains in this run folder."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


class RunLock:
    """``<run_dir>/.lock`` names the process training there (PID and host). A second run in the folder is refused
    naming the holder; a lock whose process is gone (killed, machine restarted) is taken over. Hand-written: the
    lock must name its holder and survive a kill -9 as a stale file, which fcntl locks on shared folders do not
    give reliably. Released by ``release`` or when the object is collected."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOCK
        self._release = None

    def acquire(self) -> None:
        mine = {"pid": os.getpid(), "host": socket.gethostname()}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except PermissionError as error:
                raise ValueError(f"run folder {self.path.parent} is not writable ({error.strerror}): give the run "
                                 "another folder (hydra.run.dir=...)") from None
            except FileExistsError:
                holder = self._holder()
                if holder == mine:  # this process's own earlier trainer in the folder (the Python API)
                    pass
                elif holder is not None and self._held_by_live(holder):
                    raise RunFolderBusy(f"run folder {self.path.parent} is in use by process {holder['pid']} on "
                                        f"{holder.get('host', '?')} (its {LOCK}); wait for it to end, or give this run "
                                        f"another folder (hydra.run.dir=...); if that process is gone (a machine that "
                                        f"crashed), delete {self.path}") from None
                else:
                    log.warning("run folder %s: taking over the lock of process %s, which is gone",
                                self.path.parent, (holder or {}).get("pid", "?"))
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(mine, f)
            self._release = weakref.finalize(self, _remove_if_mine, self.path, mine["pid"])
            return
        raise RunFolderBusy(f"run folder {self.path.parent}: could not take its {LOCK} (another run keeps taking it)")

    def release(self) -> None:
        if self._release is not None:
            self._release()

    def _holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):  # half written by a process killed at that instant: stale
            return None

    @staticmethod
    def _held_by_live(holder: dict) -> bool:
        if holder.get("host") != socket.gethostname():
            return True  # another machine's process cannot be checked from here: assume it runs
        return isinstance(holder.get("pid"), int) and _alive(holder["pid"])


def _remove_if_mine(path: Path, pid: int) -> None:
    try:
        if json.loads(path.read_text()).get("pid") == pid:
            path.unlink()
    except (OSError, ValueError):
        pass


def make_run_dir(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"run folder {run_dir} is not writable ({error.strerror or error}); give the run another "
                         "folder (hydra.run.dir=...)") from None


def check_writable(run_dir: Path) -> None:
    """Refuse, before training, a run folder where checkpoints cannot be written (read-only, not a folder)."""
    checkpoints = run_dir / "checkpoints"
    try:
        checkpoints.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=checkpoints, prefix=".write_probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise ValueError(f"run folder {run_dir} is not writable ({error.strerror or error}): checkpoints could not "
                         "be saved; give the run another folder (hydra.run.dir=...)") from None


def remove_orphans(run_dir: Path) -> list[Path]:
    """The temporary files of saves a killed process never finished (``checkpoints/<name>*.tmp``): removed while
    this run holds the folder's lock, so that no live save owns them."""
    orphans = sorted((run_dir / "checkpoints").glob("*.tmp"))
    for orphan in orphans:
        orphan.unlink(missing_ok=True)
    if orphans:
        log.info("removed %d unfinished save(s) left by a stopped run: %s", len(orphans),
                 ", ".join(p.name for p in orphans))
    return orphans
