"""Every cheat in the corpus gets its verdict: from the static checks, then from the runtime layers
alone under both sandboxes; none is ever `ok`, the evaluator and the host survive each, and no
secret of the evaluator's environment reaches a candidate or a result."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from evaluators.judge import Judge
from evaluators.protocol import Backend, Status
from evaluators.sandbox import Limits, ProcessSandbox
from evaluators.static_checks import check_candidate
from evaluators.warm import WARM_LIMITS, WarmPool
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


class RecordingPool(WarmPool):
    """A warm pool that remembers the last worker it handed out, to check that nothing of it survives."""

    last = None

    def acquire(self, spec, limits):
        self.last = super().acquire(spec, limits)
        return self.last


def _survivors(handle) -> list[str]:
    """What is left of a closed worker: processes of its session (a process worker), or its container."""
    if handle.sandbox == "docker":
        from docker.errors import NotFound

        try:
            handle.container.reload()
            return [f"container {handle.container.short_id}"]
        except NotFound:
            return []
    left = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == handle.pid and fields[0] != "Z":  # the session the sandbox started the worker in
            left.append(f"process {entry}")
    return left


def _judge(sandbox):
    """A judge without static checks, fed by a warm pool: the next worker starts while a case runs."""
    pool = RecordingPool(sandbox, size=1, limits=replace(WARM_LIMITS, memory_bytes=LIMITS.memory_bytes,
                                                         processes=LIMITS.processes))
    judge = Judge.for_backend(Backend.triton_interpret, sandbox=sandbox, workers=pool, limits=LIMITS,
                              static_checks=False)
    return judge, pool


@pytest.fixture(scope="module")
def process_judge(canaries):
    judge, pool = _judge(ProcessSandbox())
    yield judge
    pool.close()


@pytest.fixture(scope="module")
def docker_judge(canaries, docker_sandbox):
    judge, pool = _judge(docker_sandbox)
    yield judge
    pool.close()


def _check_runtime_verdict(judge: Judge, case: Case, canaries: dict[str, str]) -> None:
    result = judge.evaluate(_request(case))
    got = verdict(result.status.value, _rule(result))
    assert got == case.expect_runtime, f"{case.name}: {got}: {result.message}\n{result.log[-2000:]}"
    assert result.status != Status.ok
    dumped = result.model_dump_json()
    for name, secret in canaries.items():
        assert secret not in dumped and name not in dumped, f"{case.name} leaked {name}"
    # nothing the candidate started outlives its evaluation
    assert not _survivors(judge.workers.last), f"{case.name}: {_survivors(judge.workers.last)}"


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
