"""Every cheat in the corpus gets its verdict: from the static checks, then from the runtime layers
alone under both sandboxes; none is ever `ok`, the evaluator and the host survive each, and no
secret of the evaluator's environment reaches a candidate or a result."""

from __future__ import annotations

import os

import pytest

from evaluators.judge import Judge
from evaluators.protocol import Backend, Status
from evaluators.sandbox import Limits, ProcessSandbox, descendants
from evaluators.static_checks import check_candidate
from tests.adversarial.corpus import Case, load_corpus, verdict
from tests.conftest import make_request

CORPUS = load_corpus()
CANARIES = {"KS_ADVERSARIAL_API_KEY": "sk-adversarial-canary", "KS_ADVERSARIAL_TOKEN": "tok-adversarial-canary"}
# small enough that a memory bomb is stopped long before it troubles the host
LIMITS = Limits(memory_bytes=3 << 30, processes=512)


def _request(case: Case):
    return make_request(case.task, case.source, trials=2, strict=case.strict, time_limit_s=case.time_limit_s,
                        task_name=f"adversarial-{case.name}")


def _rule(result) -> str | None:
    rejects = [f.rule for f in result.findings if f.severity == "reject"]
    return rejects[0] if rejects else None


def test_the_corpus_covers_the_attacks():
    assert len(CORPUS) >= 30
    assert all(case.expect != "ok" and case.expect_runtime != "ok" for case in CORPUS)
    # the runtime layers are exercised on their own too: several cases pass the static checks on purpose
    passing = [case.name for case in CORPUS if not check_candidate(case.source, case.strict).rejected]
    assert len(passing) >= 10, passing


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_static_checks_give_the_expected_verdict(case):
    report = check_candidate(case.source, strict=case.strict)
    rejects = [f for f in report.findings if f.severity == "reject"]
    if case.expect.startswith("rejected/") and rejects:
        rules = {f.rule for f in rejects}
        assert case.expect.split("/", 1)[1] in rules, f"{case.name}: {[(f.rule, f.line) for f in rejects]}"
        assert all(f.line for f in rejects if f.rule != "no-triton-kernel")  # every rejection names its line
    else:
        # the static checks let it through: the full run is the runtime run, and must agree with it
        assert not rejects, f"{case.name}: {[(f.rule, f.line, f.message) for f in rejects]}"
        assert case.expect == case.expect_runtime, case.name


@pytest.fixture(scope="module")
def canaries():
    saved = {name: os.environ.get(name) for name in CANARIES}
    os.environ.update(CANARIES)
    yield CANARIES
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="module")
def process_judge():
    return Judge.for_backend(Backend.triton_interpret, sandbox=ProcessSandbox(), limits=LIMITS, static_checks=False)


@pytest.fixture(scope="module")
def docker_judge(docker_sandbox):
    return Judge.for_backend(Backend.triton_interpret, sandbox=docker_sandbox, limits=LIMITS, static_checks=False)


def _check_runtime_verdict(judge: Judge, case: Case, canaries: dict[str, str]) -> None:
    before = set(descendants(os.getpid()))
    result = judge.evaluate(_request(case))
    got = verdict(result.status.value, _rule(result))
    assert got == case.expect_runtime, f"{case.name}: {got}: {result.message}\n{result.log[-2000:]}"
    assert result.status != Status.ok
    dumped = result.model_dump_json()
    for name, secret in canaries.items():
        assert secret not in dumped and name not in dumped, f"{case.name} leaked {name}"
    # nothing the candidate started outlives its evaluation
    assert set(descendants(os.getpid())) <= before | {os.getpid()}


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_runtime_layers_hold_under_the_process_sandbox(case, process_judge, canaries):
    _check_runtime_verdict(process_judge, case, canaries)


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_runtime_layers_hold_under_the_docker_sandbox(case, docker_judge, canaries):
    _check_runtime_verdict(docker_judge, case, canaries)


@pytest.mark.parametrize("sandbox", ["process", "docker"])
def test_the_evaluator_survives_the_corpus(sandbox, request):
    """Last: after every cheat, the same judge still passes an honest kernel."""
    judge = request.getfixturevalue(f"{sandbox}_judge")
    result = judge.evaluate(make_request("relu_reference.py", "relu_ok.py"))
    assert result.status == Status.ok, result.message
