"""Real evaluator servers for the service and client tests, and the small requests they evaluate."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from evaluators.protocol import Backend, CorrectnessSettings, EvalRequest

REPO = Path(__file__).resolve().parents[2]
TOKEN = "test-token-0123456789abcdef"

CANDIDATES = Path(__file__).parent / "candidates"
RELU_REFERENCE = (CANDIDATES / "relu_reference.py").read_text()
RELU_CANDIDATE = (CANDIDATES / "relu_ok.py").read_text()
SLOW_CANDIDATE = (CANDIDATES / "relu_hangs.py").read_text()  # runs until it is cancelled or timed out
# structurally fine (it parses, it defines everything) but its forward fails: an infra_error
FAILING_REFERENCE = RELU_REFERENCE.replace("return torch.relu(x)", "raise RuntimeError('broken task')")
BROKEN_REFERENCE = "import torch\nclass Model: pass\n"  # no get_inputs, no get_init_inputs


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
