"""The harness's verdicts on real candidates, run in the Triton interpreter."""

from __future__ import annotations

import time

import pytest

from evaluators.judge import Judge
from evaluators.protocol import Backend, Stage, Status
from tests.conftest import make_request


@pytest.mark.parametrize(
    ("reference", "candidate"),
    [
        ("relu_reference.py", "relu_ok.py"),
        ("softmax_reference.py", "softmax_ok.py"),
        ("matmul_reference.py", "matmul_ok.py"),
    ],
)
def test_correct_kernels_are_ok(interpret_judge, reference, candidate):
    result = interpret_judge.evaluate(make_request(reference, candidate))
    assert result.status == Status.ok, result.message
    assert result.stage == Stage.done
    assert [t.phase for t in result.trials] == ["correctness", "correctness", "recheck"]
    assert all(t.passed and t.max_abs_error is not None and t.max_abs_error < 1e-3 for t in result.trials)
    # the interpreter checks correctness only: no timing, never a speedup
    assert result.timing is None and result.speedup is None
    assert "not timed" in result.message
    # where the time went, phase by phase, in order
    assert list(result.phase_s) == ["static_check", "reference", "worker_start", "device", "load", "correctness", "recheck"]


@pytest.mark.parametrize(
    ("reference", "candidate", "expected"),
    [
        ("relu_reference.py", "relu_off_by_one.py", "1 of 16000 elements outside"),
        ("softmax_reference.py", "softmax_wrong_axis.py", "elements outside"),
        ("relu_reference.py", "relu_zeros.py", "elements outside"),
        ("relu_reference.py", "relu_nan.py", "NaN value(s) where the reference is finite"),
    ],
)
def test_wrong_kernels_are_incorrect_with_error_figures(interpret_judge, reference, candidate, expected):
    result = interpret_judge.evaluate(make_request(reference, candidate))
    assert result.status == Status.incorrect
    assert result.stage == Stage.correctness
    assert expected in result.message
    failed = result.trials[-1]
    assert not failed.passed
    assert failed.mismatched >= 1
    if "NaN" not in expected:
        assert failed.max_abs_error > 1e-3 and failed.max_rel_error > 1e-3


def test_syntax_error_is_compile_error_with_line(interpret_judge):
    result = interpret_judge.evaluate(make_request("relu_reference.py", "relu_syntax_error.py"))
    assert result.status == Status.compile_error
    assert "line 16" in result.message and "def forward(self, x)" in result.message


def test_missing_modelnew_is_compile_error(interpret_judge):
    result = interpret_judge.evaluate(make_request("relu_reference.py", "relu_no_modelnew.py"))
    assert result.status == Status.compile_error
    assert "class ModelNew" in result.message


def test_constructor_that_does_not_fit_names_both_signatures(interpret_judge):
    result = interpret_judge.evaluate(make_request("relu_reference.py", "relu_bad_signature.py"))
    assert result.status == Status.compile_error
    assert result.stage == Stage.load
    assert "ModelNew(scale)" in result.message and "0 init input(s)" in result.message


def test_exception_in_forward_is_runtime_error_at_its_line(interpret_judge):
    result = interpret_judge.evaluate(make_request("relu_reference.py", "relu_raises.py"))
    assert result.status == Status.runtime_error
    assert "line 21" in result.message and "block size must divide n" in result.message


def test_crash_is_runtime_error_and_the_judge_carries_on(interpret_judge):
    result = interpret_judge.evaluate(make_request("relu_reference.py", "relu_segfault.py"))
    assert result.status == Status.runtime_error
    assert "SIGSEGV" in result.message
    # the same judge keeps evaluating
    assert interpret_judge.evaluate(make_request("relu_reference.py", "relu_ok.py")).status == Status.ok


def test_hang_is_timeout_within_the_limit(interpret_judge):
    started = time.monotonic()
    result = interpret_judge.evaluate(make_request("relu_reference.py", "relu_hangs.py", time_limit_s=6))
    elapsed = time.monotonic() - started
    assert result.status == Status.timeout
    assert "6 s time limit" in result.message
    assert elapsed < 6 + 15  # limit plus worker start-up and teardown


def test_parent_secrets_never_reach_the_candidate(monkeypatch):
    monkeypatch.setenv("KS_TEST_SECRET", "hunter2-canary")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-canary-key")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-canary")
    # the static checks would reject the probe's reach for `os`: let it run, the environment must hold
    judge = Judge.for_backend(Backend.triton_interpret, static_checks=False)
    result = judge.evaluate(make_request("relu_reference.py", "relu_env_probe.py"))
    assert result.status == Status.ok
    assert "env-probe:" in result.log  # the probe ran and printed what it saw
    dumped = result.model_dump_json()
    for canary in ("hunter2-canary", "sk-canary-key", "ghp-canary", "KS_TEST_SECRET", "OPENAI_API_KEY"):
        assert canary not in dumped


def test_broken_reference_is_the_tasks_fault(interpret_judge):
    broken = "import torch\nclass Model(torch.nn.Module):\n    def forward(self, x):\n        return x\n"
    from evaluators.loading import TaskError, check_reference_source

    with pytest.raises(TaskError, match="get_init_inputs, get_inputs"):
        check_reference_source(broken)
    failing = (
        "import torch\nclass Model(torch.nn.Module):\n    def forward(self, x):\n        return x.missing()\n"
        "def get_inputs():\n    return [torch.randn(4)]\ndef get_init_inputs():\n    return []\n"
    )
    result = interpret_judge.evaluate(make_request(failing, "relu_ok.py"))
    assert result.status == Status.infra_error and result.stage == Stage.reference
    assert "reference is broken (not the candidate's fault)" in result.message

    no_inputs = failing.replace("return [torch.randn(4)]", "return 1 / 0")  # get_inputs itself fails
    result = interpret_judge.evaluate(make_request(no_inputs, "relu_ok.py"))
    assert result.status == Status.infra_error and result.stage == Stage.reference
    assert "the task's get_inputs() failed: ZeroDivisionError" in result.message


def test_a_candidate_too_deeply_nested_to_parse_is_a_compile_error(interpret_judge):
    deep = "x = " + "-" * 5000 + "1\n"
    result = interpret_judge.evaluate(make_request("relu_reference.py", deep))
    assert result.status == Status.compile_error, result.message
    assert "RecursionError" in result.message or "MemoryError" in result.message


def test_results_report_where_they_were_measured(interpret_judge):
    result = interpret_judge.evaluate(make_request("relu_reference.py", "relu_ok.py"))
    env = result.environment
    assert env.backend == "triton-interpret" and env.sandbox == "process"
    assert env.torch and env.triton and env.python
    assert result.request_digest and result.duration_s > 0
