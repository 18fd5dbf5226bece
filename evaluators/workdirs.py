"""Private directories of judges and workers under the temp directory, each marked with the process
that made it, and the sweep of those whose process was killed before it could remove them."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from evaluators.proctree import pid_namespace

PREFIXES = ("kernelsmith-worker-", "kernelsmith-judge-")
OWNER = ".owner"  # "<pid> <start time> <pid namespace>" of the process that made the directory
UNMARKED_AGE_S = 86_400.0  # a directory without a mark (an older version's) is left this long

_swept: set[str] = set()
_sweep_lock = threading.Lock()


def make(prefix: str, root: str | os.PathLike[str] | None = None) -> Path:
    """A new private directory, marked as this process's; the first one a process makes under a root
    also sweeps that root."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown work directory prefix {prefix!r}")
    base = str(root) if root is not None else tempfile.gettempdir()
    me = _identity(os.getpid())  # None without /proc: then nothing is marked, and nothing swept
    with _sweep_lock:
        first = base not in _swept
        _swept.add(base)
    if first and me is not None:
        sweep(base)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    if me is not None:
        (path / OWNER).write_text(me)
    return path


def sweep(root: str | os.PathLike[str] | None = None, *, min_age_s: float = 60.0) -> int:
    """Remove the directories under `root` whose process is gone; returns how many were removed.

    Only directories older than `min_age_s` are looked at (one being made right now has no mark
    yet), and those without a mark only after a day. A process is gone when no process has its pid,
    or the one that has it started at another time (its pid was reused).
    """
    base = Path(root) if root is not None else Path(tempfile.gettempdir())
    removed = 0
    now = time.time()
    for prefix in PREFIXES:
        for path in base.glob(f"{prefix}*"):
            try:
                age = now - path.lstat().st_mtime
                if path.is_symlink() or not path.is_dir() or age < min_age_s:
                    continue
                mark = (path / OWNER).read_text().strip() if (path / OWNER).is_file() else None
            except (OSError, UnicodeDecodeError):
                continue
            mark = mark or None
            if mark is None and age < UNMARKED_AGE_S:
                continue
            if mark is not None and _alive(mark):
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed += not path.exists()
    return removed


def _alive(mark: str) -> bool:
    """Whether the mark's process still runs; a mark from another PID namespace (a container sharing
    the directory) cannot be judged from here, and counts as alive."""
    parts = mark.split()
    if len(parts) != 3 or not parts[0].isdigit():
        return False
    if parts[2] != pid_namespace():
        return True
    return _identity(int(parts[0])) == mark


def _identity(pid: int) -> str | None:
    """'<pid> <start time in clock ticks since boot> <pid namespace>': one process's, whatever later
    reuses its pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().decode().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return f"{pid} {fields[19]} {pid_namespace()}"
