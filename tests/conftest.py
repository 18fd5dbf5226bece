"""Fixtures shared by every test package: a CPU judge and request builders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from evaluators.protocol import Backend, CorrectnessSettings, EvalRequest

CANDIDATES = Path(__file__).parent / "evaluators" / "candidates"


@pytest.fixture(scope="session")
def interpret_judge():
    """One judge for the Triton interpreter, reused so reference data stays cached."""
    from evaluators.judge import Judge

    return Judge.for_backend(Backend.triton_interpret)


@pytest.fixture(scope="session")
def docker_sandbox():
    """The docker sandbox on the local test image (built when missing). Skipped where no daemon answers,
    except where KERNELSMITH_REQUIRE_DOCKER is set, as CI sets it: there a missing daemon fails."""
    from evaluators.sandbox_docker import (
        DEFAULT_IMAGE,
        DockerSandbox,
        DockerUnavailable,
        build_image,
        docker_client,
    )

    try:
        client = docker_client()
    except DockerUnavailable as error:
        if os.environ.get("KERNELSMITH_REQUIRE_DOCKER"):
            pytest.fail(f"{error} (KERNELSMITH_REQUIRE_DOCKER is set)")
        pytest.skip(f"{error}: start dockerd to run the docker sandbox's tests (.ci/run does)")
    if not client.images.list(name=DEFAULT_IMAGE):
        build_image(client)
    return DockerSandbox(client=client)


def make_request(reference: str | Path, candidate: str | Path, trials: int = 2, **kwargs) -> EvalRequest:
    """A request from file paths (under tests/evaluators/candidates when relative) or source text."""

    def source(value: str | Path) -> str:
        if isinstance(value, Path) or (isinstance(value, str) and value.endswith(".py") and "\n" not in value):
            path = Path(value)
            return (path if path.is_absolute() else CANDIDATES / path).read_text()
        return str(value)

    return EvalRequest(
        task_name=kwargs.pop("task_name", "test-task"),
        reference_source=source(reference),
        candidate_source=source(candidate),
        backend=kwargs.pop("backend", Backend.triton_interpret),
        correctness=kwargs.pop("correctness", CorrectnessSettings(trials=trials)),
        **kwargs,
    )


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for whoever reaps orphans here)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
