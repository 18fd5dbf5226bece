"""A user of its own for each worker of an evaluator running as root.

Workers that shared `nobody` could reach each other when their candidates got past the guards:
ptrace one another, write into another evaluation's private directory (its candidate file, its
Triton cache), and share one process limit. Each worker now runs as a uid that no other live
worker has, taken from a range no account uses. A uid is claimed through a lock file held for
the worker's life, so evaluators in separate processes on one host never hand out the same one
at once; before it is handed out again, no process may run as it and whatever it left at the
top of the shared temporary directories is removed.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import shutil
import stat
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

NOBODY = 65534
# above the ranges that accounts (1000-60000), systemd (61184-65519) and container runtimes'
# automatic allocations (524288-1879048191) use, below 2^31 (some tools read uids as signed)
FIRST_UID = int(os.environ.get("KERNELSMITH_WORKER_FIRST_UID", "1900000000"))
UID_COUNT = 4096
SHARED_DIRS = ("/tmp", "/var/tmp", "/dev/shm")

_cursor = itertools.count()
_cursor_lock = threading.Lock()


class NoWorkerUser(RuntimeError):
    """Every uid of the range is held by a live worker or still run as by something left behind."""


@dataclass
class WorkerUser:
    uid: int
    _lock_fd: int | None = None  # None: `nobody`, shared, as when no lock directory could be trusted

    @property
    def own(self) -> bool:
        return self._lock_fd is not None

    def release(self) -> None:
        """Call once the worker's whole tree is dead: its leftovers go, then the uid is free again."""
        if self._lock_fd is None:
            return
        remove_leftovers(self.uid)
        os.close(self._lock_fd)
        self._lock_fd = None


def claim() -> WorkerUser:
    """A uid for one worker: its own when a lock directory can be trusted, else `nobody`."""
    locks = lock_directory()
    if locks is None:
        return WorkerUser(NOBODY)
    for _ in range(UID_COUNT):
        with _cursor_lock:
            uid = FIRST_UID + next(_cursor) % UID_COUNT
        fd = os.open(locks / str(uid), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        if processes_of(uid):  # something of an earlier worker outlived it: not this uid
            os.close(fd)
            continue
        remove_leftovers(uid)
        return WorkerUser(uid, fd)
    raise NoWorkerUser(f"all {UID_COUNT} worker uids from {FIRST_UID} are in use (by live workers, or by processes "
                       "left running as them): end those, or set KERNELSMITH_WORKER_FIRST_UID to a free range")


def lock_directory(parents: tuple[str, ...] | None = None) -> Path | None:
    """Root's own directory for the uid locks, or None when none can be made that only root controls."""
    if os.geteuid() != 0:
        return None
    for parent in parents or ("/run", tempfile.gettempdir()):
        path = Path(parent) / "kernelsmith-worker-uids"
        try:
            path.mkdir(mode=0o700, exist_ok=True)
            info = os.lstat(path)
        except OSError:
            continue
        # one made by anyone else (a worker squatting the name in /tmp) is never trusted
        if stat.S_ISDIR(info.st_mode) and info.st_uid == 0 and not info.st_mode & 0o077:
            return path
    return None


def processes_of(uid: int) -> list[int]:
    """Live processes (zombies can do nothing) whose real, effective or saved uid is `uid`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                fields = dict(line.split(":", 1) for line in f if line.startswith(("State:", "Uid:")))
        except (OSError, ValueError):
            continue
        if str(uid) in fields.get("Uid", "").split()[:3] and not fields.get("State", "").strip().startswith("Z"):
            found.append(int(entry))
    return found


def remove_leftovers(uid: int) -> int:
    """Remove what `uid` owns at the top of the shared temporary directories; returns how many."""
    removed = 0
    for shared in {*SHARED_DIRS, tempfile.gettempdir()}:
        try:
            entries = list(os.scandir(shared))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                removed += 1
            except OSError:
                continue
    return removed
