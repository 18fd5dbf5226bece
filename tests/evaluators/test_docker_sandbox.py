"""The docker sandbox: a locked-down container per worker, the same verdicts as the process sandbox,
nothing left behind. Needs a docker daemon (CI starts one); skipped with the reason elsewhere."""

from __future__ import annotations

import time
from dataclasses import replace

from evaluators.backends import resolve
from evaluators.judge import Judge
from evaluators.protocol import Backend, Status
from evaluators.sandbox import Limits
from evaluators.sandbox_docker import DockerSandbox
from tests.conftest import make_request

LIMITS = Limits(memory_bytes=2 << 30, processes=256, wall_s=60)


def test_the_container_is_locked_down_and_removed_afterwards(docker_sandbox):
    handle = docker_sandbox.start(resolve(Backend.triton_interpret), LIMITS)
    try:
        handle.container.reload()
        host = handle.container.attrs["HostConfig"]
        assert host["NetworkMode"] == "none"
        assert host["ReadonlyRootfs"] is True
        assert host["CapDrop"] == ["ALL"]
        assert "no-new-privileges" in host["SecurityOpt"]
        assert host["Memory"] == LIMITS.memory_bytes and host["PidsLimit"] == LIMITS.processes
        assert "/tmp" in host["Tmpfs"]
        assert handle.container.attrs["Config"]["User"] == "65534:65534"
        assert handle.alive() and handle.pid > 0
        assert handle.channel.recv(timeout=60).type == "ready"
    finally:
        handle.close()
    assert not handle.workdir.exists()
    assert not docker_sandbox.client.containers.list(all=True, filters={"id": handle.container.id})


def test_verdicts_match_the_process_sandbox(docker_sandbox, monkeypatch):
    monkeypatch.setenv("KS_DOCKER_SECRET_TOKEN", "docker-canary")
    judge = Judge.for_backend(Backend.triton_interpret, sandbox=docker_sandbox, limits=LIMITS)
    ok = judge.evaluate(make_request("relu_reference.py", "relu_ok.py"))
    assert ok.status == Status.ok, ok.message
    env = ok.environment
    assert (env.sandbox, env.network_isolated, env.privileges_dropped) == ("docker", True, True)
    assert judge.evaluate(make_request("relu_reference.py", "relu_zeros.py")).status == Status.incorrect
    crash = judge.evaluate(make_request("relu_reference.py", "relu_segfault.py"))
    assert crash.status == Status.runtime_error and "SIGSEGV" in crash.message
    probe = Judge.for_backend(Backend.triton_interpret, sandbox=docker_sandbox, limits=LIMITS, static_checks=False)
    seen = probe.evaluate(make_request("relu_reference.py", "relu_env_probe.py"))
    assert seen.status == Status.ok and "env-probe:" in seen.log
    assert "docker-canary" not in seen.model_dump_json() and "KS_DOCKER_SECRET_TOKEN" not in seen.log


def test_a_container_past_its_wall_clock_is_killed(docker_sandbox):
    sandbox = DockerSandbox(client=docker_sandbox.client, wall_grace_s=0)
    handle = sandbox.start(resolve(Backend.triton_interpret), replace(LIMITS, wall_s=1))
    try:
        deadline = time.monotonic() + 30
        while handle.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not handle.alive()
        assert "wall-clock" in handle.exit_summary()
    finally:
        handle.close()


def test_a_missing_image_is_the_evaluators_fault_and_says_how_to_build_it(docker_sandbox):
    sandbox = DockerSandbox(image="kernelsmith-sandbox:missing", client=docker_sandbox.client)
    result = Judge.for_backend(Backend.triton_interpret, sandbox=sandbox).evaluate(
        make_request("relu_reference.py", "relu_ok.py"))
    assert result.status == Status.infra_error
    assert "build-image" in result.message
