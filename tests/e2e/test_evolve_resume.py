"""A parameter-only run (no model configured) killed with SIGKILL, resumed, interrupted with SIGINT,
and resumed again: nothing committed is lost, and the run ends exactly at its budget."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

import archive
from tests.e2e.runner import kernelsmith, start_kernelsmith, wait_for_rows

pytestmark = pytest.mark.slow

BUDGET = 6  # enough that the second session is still running when it is interrupted


def stored(db: Path) -> tuple[dict[int, tuple], dict[int, tuple]]:
    """Every program and evaluation of the archive, by id."""
    with archive.open(db) as store:
        (run,) = store.list_runs()
        programs = {p.id: (p.source, p.parent_id, p.operator, p.generation) for p in store.programs(run)}
        evaluations = {e.id: (e.program_id, e.status.value, e.result.message)
                       for p in store.programs(run) for e in store.evaluations(p)}
    return programs, evaluations


def contains(after: dict, before: dict) -> bool:
    return all(after.get(key) == value for key, value in before.items())


def test_killed_interrupted_and_resumed_runs_lose_nothing_and_reach_their_budget(tmp_path):
    db = tmp_path / "evolve.db"
    first = start_kernelsmith("evolve", "level1/1_ReLU", "--db", str(db), "--max-evals", str(BUDGET),
                              "--trials", "2", cwd=tmp_path, log=tmp_path / "first.log")
    try:
        wait_for_rows(db, "evaluations", 2, first)
    finally:
        first.kill()  # SIGKILL: no handler runs, nothing is tidied up
        first.wait()
    programs, evaluations = stored(db)
    assert len(evaluations) >= 2 and 1 in programs and programs[1][2] == "seed"

    # resume (the task and settings come from the run), then stop it with Ctrl-C mid-run
    second = start_kernelsmith("evolve", "--resume", "1", "--db", str(db), cwd=tmp_path, log=tmp_path / "second.log")
    try:
        wait_for_rows(db, "evaluations", len(evaluations) + 1, second)
        second.send_signal(signal.SIGINT)
        assert second.wait(timeout=60) == 0  # the seed is correct: a correct kernel was found
    finally:
        second.kill()
    log = (tmp_path / "second.log").read_text()
    assert "resuming 1" in log and "stopping:" in log and "interrupted" in log and "Traceback" not in log
    after_interrupt = stored(db)
    assert contains(after_interrupt[0], programs) and contains(after_interrupt[1], evaluations)
    with archive.open(db) as store:
        run = store.get_run(1)
        assert run.status.value == "stopped"
        # the first interrupt lets evaluations in flight finish: every program it made is evaluated
        made = [p for p in store.programs(run) if p.id not in programs]
        assert made and all(store.evaluations(p) for p in made if "attempt_error" not in p.metadata)

    third = kernelsmith("evolve", "--resume", "1", "--db", str(db), cwd=tmp_path)
    assert third.returncode == 0, third.stdout + third.stderr
    final = stored(db)
    assert contains(final[0], after_interrupt[0]) and contains(final[1], after_interrupt[1])
    with archive.open(db) as store:
        run = store.get_run(1)
        assert run.status.value == "finished" and len(store.list_runs()) == 1
        fresh = [e for p in store.programs(run) if "reused_from" not in p.metadata for e in store.evaluations(p)]
        assert len(fresh) == BUDGET  # counters continued across the three sessions
        unevaluated = [p.id for p in store.programs(run) if not store.evaluations(p) and "attempt_error" not in p.metadata]
        assert unevaluated == []
        assert all(p.operator in ("seed", "params") for p in store.programs(run))  # no model: tuning only
    assert "evaluation budget spent" in third.stdout
