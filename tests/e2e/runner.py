"""`kernelsmith` run as a user runs it: a subprocess with a clean environment, in a folder of its own."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def kernelsmith_env(**extra: str) -> dict[str, str]:
    """The environment a user's shell would give the command: no stray settings from the test runner's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KERNELSMITH_", "OPENAI_"))}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def kernelsmith(*args: str, cwd: Path, timeout: float = 240, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kernelsmith", *args], cwd=cwd, env=kernelsmith_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def start_kernelsmith(*args: str, cwd: Path, log: Path, **env: str) -> subprocess.Popen[bytes]:
    """The command in the background, its output (both streams) going to `log`."""
    with open(log, "wb") as output:
        return subprocess.Popen([sys.executable, "-m", "kernelsmith", *args], cwd=cwd, env=kernelsmith_env(**env),
                                stdout=output, stderr=subprocess.STDOUT)


def wait_for_rows(db: Path, table: str, at_least: int, process: subprocess.Popen, timeout: float = 120) -> int:
    """Poll the archive (as a reader beside the writer) until `table` has `at_least` rows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            try:
                found = count_rows(db, table)
            except sqlite3.OperationalError:  # the schema is still being created
                found = 0
            if found >= at_least:
                return found
        if process.poll() is not None:
            raise AssertionError(f"the run ended (exit {process.returncode}) before {table} had {at_least} rows")
        time.sleep(0.1)
    raise AssertionError(f"{table} did not reach {at_least} rows in {timeout:g} s")


def count_rows(db: Path, table: str) -> int:
    """Read the archive the way another process would while a run writes it."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
