"""The jail stays as its worker's parent: nothing the worker abandons outlives it, its exit status
reaches the evaluator, and a worker dropped to `nobody` keeps its memory from other `nobody`s."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evaluators.backends import resolve
from evaluators.proctree import kill_tree
from evaluators.protocol import Backend
from evaluators.sandbox import Limits, ProcessSandbox
from tests.conftest import running

REPO = str(Path(__file__).resolve().parents[2])
NOBODY = "65534"

# forks a child that leaves for a session of its own and forks again: the grandchild, orphaned,
# would be handed to init and out of any tree rooted at the worker; prints the grandchild's pid
ABANDONS = """
import os, sys, time
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.write(w, str(os.getpid()).encode() + b"\\n")
        time.sleep(120)
        os._exit(0)
    os._exit(0)
print(os.read(r, 64).decode().strip(), flush=True)
if sys.argv[1] == "stay":
    time.sleep(120)
sys.exit(int(sys.argv[1]) if sys.argv[1].isdigit() else 0)
"""


def _jail(*command: str, uid: str | None = None, **popen) -> subprocess.Popen:
    jail = [sys.executable, "-m", "evaluators.jail", "--net"] + (["--uid", uid] if uid else [])
    return subprocess.Popen([*jail, "--", *command], cwd=REPO, start_new_session=True, **popen)


def _gone_soon(pid: int) -> bool:
    deadline = time.monotonic() + 5
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not running(pid)


def test_a_process_the_worker_abandoned_dies_when_the_worker_ends():
    jail = _jail(sys.executable, "-c", ABANDONS, "3", stdout=subprocess.PIPE, text=True)
    abandoned = int(jail.stdout.readline())
    try:
        assert jail.wait(timeout=30) == 3  # the worker's own exit code reaches the evaluator
        assert _gone_soon(abandoned), "a double-forked process outlived its worker"
    finally:
        if running(abandoned):
            os.kill(abandoned, signal.SIGKILL)


def test_killing_the_tree_reaches_a_process_the_worker_abandoned():
    jail = _jail(sys.executable, "-c", ABANDONS, "stay", stdout=subprocess.PIPE, text=True)
    abandoned = int(jail.stdout.readline())
    try:
        assert running(abandoned)
        kill_tree(jail.pid)  # what the evaluator does on a timeout or an excess
        jail.wait(timeout=10)
        assert _gone_soon(abandoned), "a double-forked process survived the kill of its worker's tree"
    finally:
        if running(abandoned):
            os.kill(abandoned, signal.SIGKILL)


def test_the_jail_ends_as_its_worker_did():
    segfault = _jail(sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    assert segfault.wait(timeout=30) == -signal.SIGSEGV  # read as "the worker died from SIGSEGV"
    missing = _jail("/nonexistent/python", stderr=subprocess.PIPE, text=True)
    assert missing.wait(timeout=30) == 127
    assert "jail:" in missing.stderr.read()


def test_a_sandboxed_workers_pid_is_the_worker_under_its_jail():
    handle = ProcessSandbox().start(resolve(Backend.triton_interpret), Limits())
    try:
        with open(f"/proc/{handle.pid}/cmdline", "rb") as f:
            assert b"evaluators.worker" in f.read()
        with open(f"/proc/{handle.pid}/stat") as f:
            assert int(f.read().rsplit(")", 1)[1].split()[1]) == handle.tree_root
    finally:
        handle.close()
    assert _gone_soon(handle.pid) and _gone_soon(handle.tree_root)


def _python_for_nobody() -> str | None:
    """An interpreter `nobody` may run (a root-only pyenv one is not), and with it this checkout's
    code (not when it lies under root's home), for the tests of dropped workers."""
    if os.geteuid() != 0:
        return None
    check = f"import sys; sys.path.insert(0, {REPO!r}); import evaluators.worker_start"
    for candidate in (sys.executable, shutil.which("python3"), "/usr/bin/python3"):
        if candidate and os.path.exists(candidate):
            probe = _jail(candidate, "-c", check, uid=NOBODY, stderr=subprocess.DEVNULL)
            if probe.wait(timeout=30) == 0:
                return candidate
    return None


@pytest.mark.parametrize("private", [False, True], ids=["control", "worker"])
def test_a_worker_dropped_to_nobody_keeps_its_memory_from_other_nobodies(private):
    python = _python_for_nobody()
    if python is None:
        pytest.skip("needs root, and a Python interpreter and a checkout that nobody may read")
    holder = (f"import os, sys, time; sys.path.insert(0, {REPO!r})\n"
              "from evaluators.worker_start import keep_memory_private\n"
              f"if {private}: keep_memory_private()\n"
              "print(os.getpid(), flush=True); time.sleep(60)\n")
    worker = _jail(python, "-c", holder, uid=NOBODY, stdout=subprocess.PIPE, text=True)
    try:
        pid = int(worker.stdout.readline())
        # another candidate's worker, as the same user, after the environment and memory of this one
        peek = ("import sys\ntry:\n    open(f'/proc/{sys.argv[1]}/environ', 'rb').read()\n    print('read')\n"
                "except OSError as error:\n    print('refused', error.errno)\n")
        other = _jail(python, "-c", peek, str(pid), uid=NOBODY, stdout=subprocess.PIPE, text=True)
        seen = other.communicate(timeout=30)[0].strip()
        assert seen == ("refused 13" if private else "read")
    finally:
        kill_tree(worker.pid)
        worker.wait(timeout=10)


def test_a_dropped_worker_is_held_to_its_process_limit():
    python = _python_for_nobody()
    if python is None:
        pytest.skip("needs root, and a Python interpreter and a checkout that nobody may read")
    forks = ("import os, time\nmade = 0\nfor _ in range(12):\n    try:\n        if os.fork() == 0:\n"
             "            time.sleep(5)\n            os._exit(0)\n        made += 1\n    except OSError:\n"
             "        break\nprint(made, flush=True)\n")
    uid = str(1_900_000_000 + 8192 + os.getpid() % 1000)  # a user nothing else runs as
    jail = subprocess.Popen([sys.executable, "-m", "evaluators.jail", "--uid", uid, "--nproc", "4", "--", python,
                             "-c", forks], cwd=REPO, start_new_session=True, stdout=subprocess.PIPE, text=True)
    try:
        made = int(jail.stdout.readline())
        assert 0 < made < 4  # the worker itself counts: the limit is its user's, not root's
    finally:
        kill_tree(jail.pid)
        jail.wait(timeout=10)
