"""`kernelsmith evolve` misuse: every mistake exits 2 with what went wrong and what to do, before any
evaluation starts, resuming a run another process is evolving included. (Runs that go somewhere are in
tests/e2e.)"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import archive
from kernelsmith.cli import app
from kernelsmith.config import Settings
from kernelsmith.evolve import BUSY_HINT, EvolveError, run_config
from kernelsmith.evolve_command import resolve_task
from kernelsmith.tasks import CPU_SCALE, load_task

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no kernelsmith.yaml of the checkout's, no runs/ left behind


def evolve(*args: str, **env: str):
    clean = {"OPENAI_API_KEY": "", "OPENAI_BASE_URL": "", "KERNELSMITH_MODEL": "", "KERNELSMITH_DB": "", **env}
    result = CliRunner().invoke(app, ["evolve", *args], env=clean)
    result.squeezed = " ".join(result.output.split())  # rich wraps long lines
    return result


def test_a_shipped_task_is_found_by_label_name_or_plain_name():
    assert resolve_task("level1/13_Softmax", 1.0).label == "level1/13_Softmax"
    assert resolve_task("13_softmax", 1.0).label == "level1/13_Softmax"
    assert resolve_task("Softmax", 1.0).label == "level1/13_Softmax"  # not LogSoftmax: the whole name wins
    scaled = resolve_task("layernorm", 0.005)
    assert scaled.label == "level1/15_LayerNorm" and scaled.scale == 0.005 and scaled.seed_source
    assert resolve_task(str(REPO / "tasks" / "level1" / "1_ReLU.py"), 1.0).name == "1_ReLU"


def test_an_unknown_or_ambiguous_task_says_what_it_could_mean():
    with pytest.raises(EvolveError, match="did you mean 13_Softmax"):
        resolve_task("Sofmax", 1.0)
    with pytest.raises(EvolveError, match="names several shipped tasks: level1/19_SquareMatmul, "):
        resolve_task("matmul", 1.0)
    with pytest.raises(EvolveError, match="task file missing.py does not exist"):
        resolve_task("missing.py", 1.0)


def test_misuse_exits_2_before_anything_runs(tmp_path):
    nothing = evolve()
    assert nothing.exit_code == 2 and "name a task" in nothing.squeezed

    unknown = evolve("Sofmax")
    assert unknown.exit_code == 2 and "did you mean 13_Softmax" in unknown.squeezed

    shutil.copy(REPO / "tasks" / "level1" / "1_ReLU.py", tmp_path / "relu.py")
    unseeded = evolve(str(tmp_path / "relu.py"), "--db", str(tmp_path / "a.db"))
    assert unseeded.exit_code == 2
    assert "no seed kernel, and parameter-only evolution (no model is configured) needs one" in unseeded.squeezed
    assert "configure a model" in unseeded.squeezed and "Traceback" not in unseeded.output

    keyless = evolve("Softmax", "--model", "gpt-4o", "--db", str(tmp_path / "a.db"))
    assert keyless.exit_code == 2 and "environment variable OPENAI_API_KEY holds no API key" in keyless.squeezed

    no_run = evolve("--resume", "3", "--db", str(tmp_path / "a.db"))
    assert no_run.exit_code == 2 and "no run 3" in no_run.squeezed and "holds no run yet" in no_run.squeezed
    with archive.open(tmp_path / "a.db") as store:
        assert store.list_runs() == []  # none of these stored anything


def test_an_evaluator_that_does_not_answer_is_misuse_too(tmp_path):
    result = evolve("Softmax", "--evaluator", "http://127.0.0.1:9", "--db", str(tmp_path / "a.db"))
    assert result.exit_code == 2 and "offers no worker slot" in result.squeezed


# another process evolving run 1: it holds the run until its stdin closes
HOLDER = "import archive, sys; archive.open(sys.argv[1]).claim_run(1); print('holding', flush=True); sys.stdin.read()"


def test_resuming_a_run_another_process_is_evolving_is_refused_and_leaves_the_run_alone(tmp_path):
    db = tmp_path / "a.db"
    task = load_task(REPO / "tasks" / "level1" / "1_ReLU.py", CPU_SCALE)
    settings = Settings.model_validate({"backend": "triton-interpret"})
    with archive.open(db) as store:
        run = store.create_run(task.label, task.source, run_config(task, settings, "triton-interpret"))
        store.add_program(run, task.seed_source, operator="seed")
        before = store.set_run_status(run, "stopped")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "holding"
        refused = evolve("--resume", "1", "--db", str(db))
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)

    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert refused.stdout.strip() == ""  # no notices about a run that does not start
    said = " ".join(refused.stderr.split())  # the error and its hint, nothing else
    message = rf"run 1 is being evolved by process {holder.pid} on host {re.escape(socket.gethostname())} " \
              r"\(last heartbeat \d+ s ago\)"
    assert re.fullmatch(rf"error: {message} hint: {re.escape(BUSY_HINT)}", said), said
    with archive.open(db) as store:
        assert store.get_run(1) == before  # neither resumed nor marked stopped again: untouched
        assert [p.operator for p in store.programs(1)] == ["seed"]
        store.claim_run(1)  # the holder has exited on this host: the run is free at once
