"""Files written atomically: a reader never sees half a file, and a crash leaves the old one."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: os.umask can only be read by setting it


def write_atomically(path: str | Path, write: Callable[[str], None]) -> None:
    """Write to a temporary file in the same folder, flush it to disk, then rename: neither a crash nor a
    power cut leaves half a file, and a reader never sees one. The file gets the permissions any new file
    would (mkstemp's are owner-only, which would keep colleagues from evaluating a shared run)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomically(path: str | Path, text: str) -> None:
    write_atomically(path, lambda tmp: Path(tmp).write_text(text))
