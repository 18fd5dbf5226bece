"""`kernelsmith leaderboard` for real on the CPU: parameter-only evolution over a small suite through the
Triton interpreter, interrupted mid-suite and rerun to completion, then its tables and reports; and the
rules that keep a leaderboard's results comparable."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import archive
from evaluators.local import LocalEvaluator
from kernelsmith.cli import app
from kernelsmith.config import Settings
from kernelsmith.leaderboard import LeaderboardError, Plan, default_name, run_leaderboard, suite_name
from kernelsmith.tasks import shipped_suite
from tests.kernelsmith.chromium import assert_not_blank, count_colour, embedded_images, render

REPO = Path(__file__).resolve().parents[2]
NAME = "cpu"
TASKS = ["level1/1_ReLU", "level1/4_Tanh"]  # Tanh ships no seed kernel here
GREEN = (0x2E, 0x9E, 0x44)  # correct results in the plots


def make_suite(root: Path) -> Path:
    """A shipped task with its seed, and one without a seed: parameter tuning cannot start that one."""
    level = root / "suite" / "level1"
    (level / "seeds").mkdir(parents=True)
    for name in ("1_ReLU.py", "4_Tanh.py"):
        shutil.copy(shipped_suite() / "level1" / name, level / name)
    shutil.copy(shipped_suite() / "level1" / "seeds" / "1_ReLU.py", level / "seeds" / "1_ReLU.py")
    return root / "suite"


def arguments(root: Path) -> list[str]:
    return ["leaderboard", str(root / "suite"), "--name", NAME, "--budget-per-task", "2", "--backend",
            "triton-interpret", "--db", str(root / "lb.db"), "--out", str(root / "leaderboards" / NAME),
            "--markdown", str(root / "docs" / "cpu.md")]


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KERNELSMITH_", "OPENAI_"))}
    return {**env, "PYTHONPATH": str(REPO), "COLUMNS": "200"}


def evaluations_of(db: Path, label: str) -> tuple[int | None, int]:
    """(the task's run, its evaluations so far), read the way another process would while the run writes."""
    if not db.exists():
        return None, 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        try:
            row = conn.execute("SELECT run_id FROM leaderboard_entries WHERE task_label = ?", (label,)).fetchone()
        except sqlite3.OperationalError:  # the schema is not there yet
            return None, 0
        if row is None or row[0] is None:
            return None, 0
        count = conn.execute("SELECT count(*) FROM evaluations JOIN programs ON programs.id = evaluations.program_id "
                             "WHERE programs.run_id = ?", (row[0],)).fetchone()[0]
        return row[0], count


@pytest.fixture(scope="module")
def interrupted_then_rerun(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run the leaderboard and stop it hard (Ctrl-C twice: work in flight is dropped) once its first task
    has a result; then run the same command again (in this process, to save a start-up)."""
    root = tmp_path_factory.mktemp("leaderboard")
    make_suite(root)
    first = subprocess.Popen([sys.executable, "-m", "kernelsmith", *arguments(root)], cwd=root, env=environment(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while evaluations_of(root / "lb.db", TASKS[0])[1] < 1:
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the first task never got a result"
        time.sleep(0.1)
    first.send_signal(signal.SIGINT)
    time.sleep(0.5)
    if first.poll() is None:
        first.send_signal(signal.SIGINT)
    out, err = first.communicate(timeout=120)
    run_id, before = evaluations_of(root / "lb.db", TASKS[0])
    with archive.open(root / "lb.db") as db:
        status = db.get_run(run_id).status.value
        entries = [(e.task_label, e.run_id, e.error) for e in db.leaderboards.get(NAME).entries]
    second = CliRunner().invoke(app, arguments(root), env={"COLUMNS": "200"})  # here: no second start-up
    return {"root": root, "first": (first.returncode, out, err), "run": run_id, "status": status,
            "entries": entries, "before": before, "after": evaluations_of(root / "lb.db", TASKS[0])[1],
            "second": second}


def test_an_interrupted_leaderboard_continues_where_it_stopped(interrupted_then_rerun: dict):
    outcome = interrupted_then_rerun
    code, _, err = outcome["first"]
    assert code == 1 and "rerun the same command" in err
    assert outcome["status"] == "stopped"
    assert outcome["entries"] == [(TASKS[0], outcome["run"], None), (TASKS[1], None, None)]  # Tanh never reached

    second = outcome["second"]
    assert second.exit_code == 1, second.output  # Tanh cannot start without a seed kernel or a model
    assert f"resuming run {outcome['run']}" in second.stdout
    assert "has no seed kernel" in second.stderr
    # the dropped child was evaluated on the rerun (unless the first Ctrl-C already let it finish)
    assert outcome["after"] >= 2 and (outcome["after"] > outcome["before"] or outcome["before"] >= 2)
    with archive.open(outcome["root"] / "lb.db") as db:
        assert [run.id for run in db.list_runs()] == [outcome["run"]]  # no second run of the same task
        assert db.get_run(outcome["run"]).status.value == "finished"
        board = db.leaderboards.get(NAME)
        assert [e.run_id for e in board.entries] == [outcome["run"], None]
        assert "no seed kernel" in (board.entries[1].error or "")


def test_a_rerun_skips_finished_tasks_without_starting_the_evaluator(interrupted_then_rerun: dict):
    with archive.open(interrupted_then_rerun["root"] / "lb.db") as db:
        settings = Settings(backend="triton-interpret", budgets={"max_evals": 2}, db=db.where)
        suite = str(interrupted_then_rerun["root"] / "suite")
        events: list[str] = []

        async def rerun():
            evaluator = LocalEvaluator(devices=[], cpu_workers=1)
            try:
                return await run_leaderboard(Plan(suite, (), settings, NAME), db, evaluator,
                                             on_event=lambda e: events.append(f"{e.label} {e.kind}"))
            finally:
                await evaluator.aclose()

        session = asyncio.run(rerun())
        assert events == [f"{TASKS[0]} skipped", f"{TASKS[1]} starting", f"{TASKS[1]} could not start"]
        assert session.skipped == 1 and session.summaries == [] and len(db.list_runs()) == 1


def test_the_cpu_leaderboard_reports_correctness_only(interrupted_then_rerun: dict):
    root, second = interrupted_then_rerun["root"], interrupted_then_rerun["second"]
    assert "correctness (speed not measured)" in second.stdout
    assert "fast_0 (correctness)" in second.stdout and "50.0%" in second.stdout
    folder = root / "leaderboards" / NAME
    document = json.loads((folder / "leaderboard.json").read_text())
    assert document["measured"] is False and document["backend"] == "triton-interpret"
    overall = document["metrics"]["eager"][-1]
    assert (overall["tasks"], overall["correct"]) == (2, 1)
    assert overall["fast_p"] == {"0": 0.5, "1": None, "1.5": None, "2": None}
    assert overall["geomean_speedup"] is None
    rows = list(csv.DictReader(io.StringIO((folder / "leaderboard.csv").read_text())))
    assert [(r["task"], r["state"], r["correct"]) for r in rows] == [
        (TASKS[0], "finished", "1"), (TASKS[1], "could not start", "0")]
    notes = (root / "docs" / "cpu.md").read_text()
    assert "Speed was not measured" in notes and "| all | 2 | 1 | 50.0% |" in notes and "over eager" not in notes
    assert (root / "docs" / "cpu.png").is_file()
    page = (folder / "leaderboard.html").read_text()
    assert "correctness (speed not measured)" in page and "data:image/png;base64," in page


def test_a_cpu_run_report_says_speed_was_not_measured_and_draws_correctness(interrupted_then_rerun: dict,
                                                                               tmp_path: Path):
    from kernelsmith.report import write_run_report

    with archive.open(interrupted_then_rerun["root"] / "lb.db") as db:
        run_id = db.leaderboards.get(NAME).entries[0].run_id
        files = write_run_report(db, run_id, tmp_path)
    dom, screenshot = render(files.html, tmp_path, height=2600)
    assert "Speed was not measured" in dom and len(embedded_images(dom)) == 3
    assert 'id="lineage-steps"' in dom and "correct (speed not measured)" in dom
    assert "ok" in dom[dom.index('id="statuses"'):]  # the status table, beside its plot
    assert_not_blank(screenshot)
    # the ok bar and the correct-so-far line; the page's own green (lineage dots and rule) is a few hundred pixels
    assert count_colour(screenshot, GREEN) > 3000


def test_a_named_leaderboard_refuses_other_settings(tmp_path: Path):
    suite = make_suite(tmp_path)
    with archive.open(tmp_path / "lb.db") as db:
        settings = Settings(backend="triton-interpret", budgets={"max_evals": 2})
        db.leaderboards.create("mine", str(suite), TASKS, {
            "levels": [], "budget_per_task": 3, "backend": "triton-interpret", "scale": 0.005,
            "compile_baseline": False, "models": [], "trials": 5, "repetitions": 100})

        async def attempt() -> None:
            evaluator = LocalEvaluator(devices=[], cpu_workers=1)  # never started: the check comes first
            try:
                await run_leaderboard(Plan(str(suite), (), settings, "mine"), db, evaluator)
            finally:
                await evaluator.aclose()

        with pytest.raises(LeaderboardError, match=r"budget_per_task: 3 before, 2 now"):
            asyncio.run(attempt())
        assert db.list_runs() == [] and [e.run_id for e in db.leaderboards.get("mine").entries] == [None] * 2


def test_names_say_what_was_run(tmp_path: Path):
    settings = Settings(budgets={"max_evals": 4})
    assert default_name(Plan(None, (1,), settings), "triton-nvidia", 1.0) == "kernelsmith-level1-triton-nvidia-4evals"
    checkout = tmp_path / "KernelBench" / "KernelBench"  # a checkout and the task folder inside it
    checkout.mkdir(parents=True)
    assert suite_name(str(checkout)) == suite_name(str(checkout.parent)) == "KernelBench"
    assert default_name(Plan(str(checkout.parent), (1, 2), settings), "triton-interpret", 0.01) == \
        "KernelBench-level1+2-triton-interpret-4evals-scale0.01"


def test_misuse_exits_2_and_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    nowhere = runner.invoke(app, ["leaderboard", str(tmp_path / "nowhere"), "--db", "lb.db"])
    assert nowhere.exit_code == 2 and "neither a task file" in nowhere.stderr
    numeric = runner.invoke(app, ["leaderboard", "--name", "12", "--db", "lb.db"])
    assert numeric.exit_code == 2 and "not a number" in numeric.stderr
    assert not (tmp_path / "lb.db").exists()
