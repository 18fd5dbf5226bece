"""Every shipped seed kernel passes the real evaluator on the CPU, at the suite's reduced scale."""

from __future__ import annotations

import pytest

from evaluators.protocol import Backend, CorrectnessSettings, EvalRequest, Status
from kernelsmith.tasks import CPU_SCALE, load_suite, shipped_suite

SEEDED = [task for task in load_suite(shipped_suite(), scale=CPU_SCALE).tasks if task.seed_source is not None]


@pytest.mark.slow
@pytest.mark.parametrize("task", SEEDED, ids=[task.label for task in SEEDED])
def test_the_seed_evaluates_ok_at_cpu_scale(task, interpret_judge):
    request = EvalRequest(
        task_name=task.label,
        reference_source=task.source,  # the scaled source, exactly as a CPU run sends it
        candidate_source=task.seed_source,
        backend=Backend.triton_interpret,
        correctness=CorrectnessSettings(trials=2),
    )
    result = interpret_judge.evaluate(request)
    assert result.status == Status.ok, f"{task.seed_path}: {result.status.value}: {result.message}\n{result.log[-2000:]}"
    assert all(trial.passed for trial in result.trials) and len(result.trials) == 3  # two trials and a recheck
    findings = result.findings
    if all(trial.numel == 1 for trial in result.trials):  # a loss: one value always reads as "constant"
        findings = [finding for finding in findings if finding.rule != "weak-reference"]
    assert not findings, [finding.message for finding in findings]
