"""The worker's runtime guards: candidate code is refused what it may not do, named at its line, while
Triton kernels (and Triton's own use of files, processes and introspection) still work under them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evaluators.worker_env import worker_environment

SCENARIOS = {
    # scenario: (the rule it must break, or None when allowed; the exception the candidate sees)
    "kernel": (None, None),
    "read_inside": (None, None),
    "write_inside": (None, None),
    "read_outside": ("file-access", "Refused"),
    "write_outside": ("file-access", "Refused"),
    "torch_load_outside": ("file-access", "Refused"),
    "import_forbidden": ("forbidden-import", "ImportError"),
    "thread": ("stray-thread", None),
    "signal_handler": ("signal-handler", None),
    "realtime_signal_handler": ("signal-handler", None),  # a signal the Signals enum has no name for
    "patch": ("monkey-patch", None),
    "getframe": ("frame-introspection", "Refused"),
    "os_exit": ("process-exit", "Refused"),
    "exec_code": ("dynamic-code", "Refused"),
    "spawn_through_triton": ("process-spawn", "Refused"),
    "socket_open": ("network", "Refused"),
}


@pytest.fixture(scope="module")
def outcomes():
    script = Path(__file__).parent / "guard_scenarios.py"
    run = subprocess.run([sys.executable, str(script), *SCENARIOS], capture_output=True, text=True, timeout=300,
                         env=worker_environment(None, Path("/tmp")))
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert lines, run.stderr[-3000:]
    return {line["scenario"]: line for line in lines}


def test_a_report_before_the_baseline_names_no_signal_handler(outcomes):
    # a worker whose task failed to load reports its error before anything was recorded to compare with
    assert outcomes["before_baseline"]["findings"] == []


def test_importing_a_kernel_module_trips_nothing(outcomes):
    # @triton.jit reads the kernel's source and code objects: Triton's doing, not the candidate's
    assert outcomes["import"]["findings"] == []


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_each_scenario_is_refused_or_allowed(outcomes, scenario):
    rule, error = SCENARIOS[scenario]
    outcome = outcomes[scenario]
    assert outcome["error"] == error, outcome
    if rule is None:
        assert outcome["findings"] == [], outcome
    else:
        assert [f["rule"] for f in outcome["findings"]][:1] == [rule], outcome
        # where the guard saw the candidate's frame, it names the line
        if error == "Refused":
            assert isinstance(outcome["findings"][0]["line"], int)


def test_ops_inside_triton_launches_are_not_the_candidates(outcomes):
    # the interpreter copies tensors with aten ops inside the launch; the candidate's own clamp is recorded
    assert outcomes["kernel"]["ops"] == ["aten.clamp", "aten.equal", "aten.randn"]
