"""`kernelsmith eval`: one JSON object with --json, and exit codes a script can rely on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from kernelsmith.cli import app

CANDIDATES = Path(__file__).parents[1] / "evaluators" / "candidates"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kernelsmith", "eval", *args], capture_output=True, text=True, timeout=300
    )


def test_json_output_is_exactly_one_result_and_exit_code_follows_the_verdict():
    ok = run(str(CANDIDATES / "relu_reference.py"), str(CANDIDATES / "relu_ok.py"), "--json", "--trials", "2")
    assert ok.returncode == 0, ok.stderr
    result = json.loads(ok.stdout)  # the whole of stdout parses as one object
    assert result["status"] == "ok" and result["speedup"] is None and "message" in result
    wrong = run(str(CANDIDATES / "relu_reference.py"), str(CANDIDATES / "relu_zeros.py"), "--json", "--trials", "2")
    assert wrong.returncode == 1
    assert json.loads(wrong.stdout)["status"] == "incorrect"


def test_human_summary_names_the_verdict_and_the_cpu_limitation():
    shown = run(str(CANDIDATES / "relu_reference.py"), str(CANDIDATES / "relu_syntax_error.py"))
    assert shown.returncode == 1
    assert "compile_error" in shown.stdout and "line 16" in shown.stdout
    assert "checks correctness" in shown.stdout


def test_misuse_exits_2_with_a_message():
    missing = run("/nonexistent/reference.py", str(CANDIDATES / "relu_ok.py"))
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    bad_flag = run(str(CANDIDATES / "relu_reference.py"), str(CANDIDATES / "relu_ok.py"), "--trials", "zero")
    assert bad_flag.returncode == 2
    broken = CANDIDATES / "relu_ok.py"  # a candidate is not a task: it lacks Model and get_inputs
    not_a_task = run(str(broken), str(broken))
    assert not_a_task.returncode == 2 and "lacks" in not_a_task.stderr


def test_out_of_range_limits_exit_2_naming_the_flag_and_its_range():
    task, candidate = str(CANDIDATES / "relu_reference.py"), str(CANDIDATES / "relu_ok.py")
    for flag, value, allowed in [
        ("--time-limit", "0", "between 1 and 3600"),
        ("--time-limit", "5000", "between 1 and 3600"),
        ("--repetitions", "-1", "between 1 and 100000"),
        ("--repetitions", "200000", "between 1 and 100000"),
    ]:  # in this process: the flags are checked before anything is evaluated
        shown = CliRunner().invoke(app, ["eval", task, candidate, flag, value])
        assert shown.exit_code == 2, (flag, value, shown.stderr)
        assert shown.stderr.strip().splitlines() == [f"error: {flag} must be {allowed}, got {value}"]
