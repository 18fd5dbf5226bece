"""Work directories: marked with the process that made them, swept once that process is gone."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time
from pathlib import Path

from evaluators import workdirs
from evaluators.proctree import pid_namespace
from evaluators.reference import ReferenceStore

REPO = Path(__file__).resolve().parents[2]
MAKE = "import sys; from evaluators import workdirs; print(workdirs.make('kernelsmith-worker-', sys.argv[1]))"


def aged(path: Path, seconds: float) -> Path:
    path.mkdir(exist_ok=True)
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def made_by_a_process_now_gone(root: Path) -> Path:
    """A directory whose process ended without removing it (as one killed with SIGKILL)."""
    made = subprocess.run([sys.executable, "-c", MAKE, str(root)], capture_output=True, text=True, check=True,
                          cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
    return Path(made.stdout.strip())


def test_directories_of_killed_processes_are_swept_and_live_ones_kept(tmp_path):
    # made first: each process's first directory under a root sweeps it, which would take the aged ones
    orphan = made_by_a_process_now_gone(tmp_path)
    young_orphan = made_by_a_process_now_gone(tmp_path)  # as one being made right now would be
    ours = workdirs.make("kernelsmith-judge-", tmp_path)  # this live process's
    (orphan / "triton-cache").mkdir()
    aged(orphan, 120)
    aged(ours, 120)
    reused = tmp_path / "kernelsmith-worker-reused"
    reused.mkdir()
    namespace = pid_namespace()
    (reused / workdirs.OWNER).write_text(f"{os.getpid()} 1 {namespace}")  # our pid, another start: reused
    aged(reused, 120)
    elsewhere = tmp_path / "kernelsmith-worker-elsewhere"  # a process of another PID namespace: not ours to judge
    elsewhere.mkdir()
    (elsewhere / workdirs.OWNER).write_text(f"{os.getpid()} 1 [4026531836999]")
    aged(elsewhere, 120)
    old_unmarked = aged(tmp_path / "kernelsmith-worker-old", 2 * 86_400)  # an older version's
    new_unmarked = aged(tmp_path / "kernelsmith-worker-new", 0)
    someone_else = aged(tmp_path / "unrelated-dir", 2 * 86_400)

    assert workdirs.sweep(tmp_path) == 3
    assert not orphan.exists() and not reused.exists() and not old_unmarked.exists()
    assert ours.exists() and young_orphan.exists() and new_unmarked.exists() and someone_else.exists()
    assert elsewhere.exists()


def test_the_first_directory_made_under_a_root_sweeps_it(tmp_path):
    orphan = aged(made_by_a_process_now_gone(tmp_path), 120)
    fresh = workdirs.make("kernelsmith-worker-", tmp_path)
    assert not orphan.exists() and fresh.exists()
    assert (fresh / workdirs.OWNER).read_text().split()[0] == str(os.getpid())


def test_a_reference_store_removes_its_directory_when_it_goes(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    store = ReferenceStore()
    (made,) = tmp_path.glob("kernelsmith-judge-*")
    del store
    gc.collect()
    assert not made.exists()
