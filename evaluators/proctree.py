"""Process trees, found through /proc: what a process started, wherever it moved since (a new
session or process group does not take a process out of its parent's tree), and the kill of all
of it. Small and dependency-free: the jail uses it too, before any worker code is imported."""

from __future__ import annotations

import os
import signal


def descendants(root: int) -> list[int]:
    """The process and everything below it, by parent links (a setsid does not hide a child)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode("utf-8", "replace")
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def kill_tree(root: int, *, spare_root: bool = False) -> None:
    """Stop the whole tree first (so nothing forks or escapes meanwhile), then kill it; with
    `spare_root`, everything below `root` but not `root` itself (a supervisor cleaning up)."""
    stopped: set[int] = set()
    for _ in range(10):
        fresh = [pid for pid in descendants(root) if pid not in stopped and not (spare_root and pid == root)]
        if not fresh:
            break
        for pid in fresh:
            signal_quietly(pid, signal.SIGSTOP)
        stopped.update(fresh)
    if not spare_root:
        try:
            os.killpg(root, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        stopped.add(root)
    for pid in stopped:
        signal_quietly(pid, signal.SIGKILL)


def pid_namespace() -> str:
    """This process's PID namespace: a pid means the same process only to others in the same one."""
    try:
        return os.readlink("/proc/self/ns/pid").removeprefix("pid:")
    except OSError:
        return "?"


def signal_quietly(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass
