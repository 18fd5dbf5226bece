"""Shared by the service, client and warm-pool tests: tiny real tasks and real evaluator servers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from evaluators.protocol import Backend, CorrectnessSettings, EvalRequest

REPO = Path(__file__).resolve().parents[2]
TOKEN = "test-token-0123456789abcdef"

RELU_REFERENCE = """
import torch
import torch.nn as nn

class Model(nn.Module):
    def forward(self, x):
        return torch.relu(x)

def get_inputs():
    return [torch.randn(4, 256)]

def get_init_inputs():
    return []
"""

RELU_CANDIDATE = """
import torch
import torch.nn as nn
import triton
import triton.language as tl

@triton.jit
def relu_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    x = tl.load(x_ptr + offsets, mask=mask)
    tl.store(out_ptr + offsets, tl.maximum(x, 0.0), mask=mask)

class ModelNew(nn.Module):
    def forward(self, x):
        x = x.contiguous()
        out = torch.empty_like(x)
        relu_kernel[(triton.cdiv(x.numel(), 1024),)](x, out, x.numel(), BLOCK=1024)
        return out
"""

# busy for minutes before launching anything: a job that stays running until cancelled
SLOW_CANDIDATE = RELU_CANDIDATE.replace(
    "        x = x.contiguous()", "        spin = 0\n        for step in range(10 ** 10):\n            spin += step\n        x = x.contiguous()"
)

# structurally fine (it parses, it defines everything) but its forward fails: an infra_error
FAILING_REFERENCE = RELU_REFERENCE.replace("return torch.relu(x)", "raise RuntimeError('broken task')")


def relu_request(tag: str = "", candidate: str = RELU_CANDIDATE, reference: str = RELU_REFERENCE,
                 **overrides: object) -> EvalRequest:
    """A small interpreter request; a distinct tag makes a distinct request (digest)."""
    fields: dict[str, object] = dict(
        task_name="relu", reference_source=reference, candidate_source=candidate + (f"\n# {tag}\n" if tag else ""),
        backend=Backend.triton_interpret, correctness=CorrectnessSettings(trials=2, recheck_after_timing=0),
        time_limit_s=120.0,
    )
    fields.update(overrides)
    return EvalRequest(**fields)  # type: ignore[arg-type]


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]
    token: str | None

    def headers(self, token: str | None = "default") -> dict[str, str]:
        token = self.token if token == "default" else token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def start_server(*args: str, token: str | None = TOKEN) -> Server:
    """`python -m evaluators` on an ephemeral loopback port, as a real subprocess."""
    command = [sys.executable, "-m", "evaluators", "--port", "0", *args]
    if token:
        command += ["--token", token]
    log = tempfile.NamedTemporaryFile("w+", prefix="evaluator-server-", suffix=".log", delete=False)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    found = re.search(r"http://\S+", line)
    if not found:
        process.kill()
        log.seek(0)
        raise AssertionError(f"the evaluator did not start: {line!r}\n{log.read()[-3000:]}")
    server = Server(found.group(0), process, token)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{server.url}/v1/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.kill()
    raise AssertionError("the evaluator never answered /v1/health")


@pytest.fixture(scope="session")
def servers() -> Iterator[Callable[..., Server]]:
    """Starts servers on demand; every one is stopped when the session ends."""
    started: list[Server] = []

    def start(*args: str, token: str | None = TOKEN) -> Server:
        server = start_server(*args, token=token)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@dataclass(frozen=True)
class Sources:
    relu_reference: str = RELU_REFERENCE
    relu_candidate: str = RELU_CANDIDATE
    slow_candidate: str = SLOW_CANDIDATE
    failing_reference: str = FAILING_REFERENCE
    token: str = TOKEN


@pytest.fixture(scope="session")
def sources() -> Sources:
    return Sources()


@pytest.fixture(scope="session")
def make_request() -> Callable[..., EvalRequest]:
    return relu_request
