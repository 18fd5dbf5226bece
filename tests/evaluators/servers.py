"""Real evaluator servers for the service and client tests, and the small requests they evaluate; and a
scripted stand-in for the answers a real one gives only when broken, restarting or behind a proxy."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from evaluators.api import Capacity, JobState, JobView, ServiceInfo
from evaluators.protocol import PROTOCOL_VERSION, Backend, CorrectnessSettings, EvalRequest

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


# (HTTP status, Content-Type, body)
Reply = tuple[int, str, str]
QUEUED = (202, "application/json", JobView(
    id="scripted-1", state=JobState.queued, task_name="relu", backend="triton-interpret", request_digest="0" * 64,
    submitted_at=0.0).model_dump_json())
FORGOTTEN = (404, "application/json", '{"error": "unknown_evaluation", "message": "no evaluation \'scripted-1\' here"}')
PROXY_PAGE = (200, "text/html", "<html><body>Please sign in to continue</body></html>")


class ScriptedEvaluator:
    """An evaluator API on loopback that answers /v1/info as a CPU evaluator with `slots` free slots,
    and submits and long polls with the replies given; `requests` lists what it was asked."""

    def __init__(self, submit: Reply, wait: Reply = FORGOTTEN, slots: int = 1) -> None:
        info = ServiceInfo(protocol_version=PROTOCOL_VERSION, versions={}, backends=["triton-interpret"], devices=[],
                           workers=[], warm={}, queue_depth=0, max_queue=256, limits={}, uptime_s=1.0,
                           capacity={"triton-interpret": Capacity(slots=slots, busy=0, queued=0, free=slots)})
        routes = {"GET /v1/info": (200, "application/json", info.model_dump_json()), "POST /v1/evaluations": submit}
        self.requests: list[str] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._answer()

            def _answer(self) -> None:
                route = f"{self.command} {self.path.split('?')[0]}"
                scripted.requests.append(route)
                status, content_type, body = wait if route.endswith("/wait") else routes.get(route, FORGOTTEN)
                encoded = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(encoded)))
                self.end_headers()
                self.wfile.write(encoded)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def __enter__(self) -> ScriptedEvaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def asked(self, route: str) -> int:
        return sum(request == route for request in self.requests)
