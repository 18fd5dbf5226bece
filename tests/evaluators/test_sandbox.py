"""The process sandbox: network cut, limits, whole-tree kills, a scrubbed environment."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from evaluators.backends import resolve
from evaluators.judge import Judge
from evaluators.proctree import kill_tree
from evaluators.protocol import Backend, Status
from evaluators.sandbox import (
    Limits,
    ProcessSandbox,
    WorkerStartError,
)
from evaluators.worker_env import looks_secret, worker_environment
from tests.conftest import make_request, running

CONNECT = "import socket,sys\ntry:\n    socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=3)\n    print('connected')\nexcept OSError as e:\n    print('refused', e)\n"


def test_jail_cuts_the_network():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = str(server.getsockname()[1])
    try:
        open_run = subprocess.run([sys.executable, "-c", CONNECT, port], capture_output=True, text=True, timeout=60)
        assert "connected" in open_run.stdout  # the server is reachable from outside the jail
        jailed = subprocess.run(
            [sys.executable, "-m", "evaluators.jail", "--net", "--", sys.executable, "-c", CONNECT, port],
            capture_output=True, text=True, timeout=60, env=worker_environment(None, Path("/tmp")),
        )
        assert "refused" in jailed.stdout, jailed.stdout + jailed.stderr
    finally:
        server.close()


def test_results_say_whether_the_network_was_cut(interpret_judge):
    result = interpret_judge.evaluate(make_request("relu_reference.py", "relu_ok.py"))
    assert result.environment.network_isolated is True


def test_environment_keeps_only_what_the_backend_needs(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("HF_TOKEN", "x")
    monkeypatch.setenv("MY_APP_SETTING", "x")
    env = worker_environment(None, tmp_path)
    assert not {"AWS_SECRET_ACCESS_KEY", "HF_TOKEN", "MY_APP_SETTING"} & set(env)
    assert env["HOME"].startswith(str(tmp_path)) and env["TRITON_CACHE_DIR"].startswith(str(tmp_path))
    assert looks_secret("OPENAI_API_KEY") and looks_secret("db_password") and not looks_secret("PATH")


def test_kill_tree_reaches_children_that_left_the_process_group():
    script = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], start_new_session=True)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True)
    child_pid = int(parent.stdout.readline())
    kill_tree(parent.pid)
    parent.wait(timeout=10)
    for _ in range(50):
        if not running(child_pid):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the detached child survived")


ORPHAN_PARENT = """
import sys, time
from pathlib import Path
from evaluators.backends import resolve
from evaluators.protocol import Backend
from evaluators.sandbox import Limits, ProcessSandbox
handle = ProcessSandbox().start(resolve(Backend.triton_interpret), Limits(wall_s=600, cpu_s=600))
assert handle.channel.recv(timeout=60).type == "ready"
candidates = Path(sys.argv[1])
handle.channel.send({"type": "load", "reference_file": str(candidates / "relu_reference.py"),
                     "candidate_file": str(candidates / "relu_hangs.py"), "init_seed": 0, "cuda_ipc": False,
                     "cpu_s": 600, "nonce": "n"})
assert handle.channel.recv(timeout=60).type == "device" and handle.channel.recv(timeout=60).type == "loaded"
handle.channel.send({"type": "run", "seed": 1, "nonce": "n"})  # its forward never returns
print(handle.pid, flush=True)
time.sleep(600)
"""


def test_a_worker_whose_evaluator_was_killed_does_not_run_on():
    # SIGKILL: no handler of the evaluator runs, and the worker is busy in a forward that never returns
    parent = subprocess.Popen([sys.executable, "-c", ORPHAN_PARENT, str(Path(__file__).parent / "candidates")],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    worker_pid = None
    try:
        worker_pid = int(parent.stdout.readline())
        time.sleep(1.0)
        assert running(worker_pid)  # spinning in its candidate's forward
        parent.kill()
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while running(worker_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not running(worker_pid), "the orphaned worker is still running its candidate"
    finally:
        parent.kill()
        if worker_pid is not None:
            kill_tree(worker_pid)


def test_memory_watchdog_kills_a_worker_over_its_limit():
    hog = (make_request("relu_reference.py", "relu_ok.py").candidate_source
           .replace("        n = x.numel()\n", "        n = x.numel()\n        hog = [bytearray(64 << 20) for _ in range(64)]\n"))
    judge = Judge.for_backend(Backend.triton_interpret, limits=Limits(memory_bytes=1536 << 20))
    result = judge.evaluate(make_request("relu_reference.py", hog))
    assert result.status == Status.runtime_error
    assert "MiB of host memory" in result.message


def test_a_worker_that_never_connects_leaves_no_directory_behind(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the sandbox makes work directories
    spec = resolve(Backend.triton_interpret)
    # the worker keeps root's user: an unprivileged one could not enter pytest's private tmp_path
    with pytest.raises(WorkerStartError, match="did not connect within"):
        ProcessSandbox(drop_privileges=False).start(spec, Limits(), connect_timeout_s=0.05)
    assert list(tmp_path.iterdir()) == []
    # the jail's address space becomes 64 MiB: the worker dies importing torch, before it connects
    cramped = Limits(memory_bytes=(64 << 20) - (8 << 30))
    with pytest.raises(WorkerStartError, match="exited with code .* before connecting; last output: "):
        ProcessSandbox(drop_privileges=False).start(spec, cramped)
    assert list(tmp_path.iterdir()) == []
