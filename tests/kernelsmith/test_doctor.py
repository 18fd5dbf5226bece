"""`kernelsmith doctor` on this CPU machine, on a fake MetaX device tree, and against real endpoints:
a scripted OpenAI-compatible server, a dead port, the docker daemon where one runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import torch
import triton

from evaluators.protocol import Backend
from evaluators.sandbox_docker import DEFAULT_IMAGE
from kernelsmith.doctor_command import docker_checks, host_checks

FAKE_MX_SMI = Path(__file__).parents[1] / "evaluators" / "fake_mx_smi"
SECRET = "sk-doctor-test-0123456789abcdef"


def doctor(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "COLUMNS": "250", **(env or {})}  # wide: table cells stay on one line
    return subprocess.run([sys.executable, "-m", "kernelsmith", "doctor", *args], capture_output=True, text=True,
                          env=environment, cwd=cwd, timeout=180)


def dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed on leaving: nothing listens there


def test_on_this_cpu_machine_it_reports_no_gpu_the_interpreter_versions_and_each_endpoint(fake_openai, tmp_path):
    config = tmp_path / "kernelsmith.yaml"
    config.write_text(
        "models:\n"
        f"  - {{name: fake-model, base_url: '{fake_openai.base_url}'}}\n"
        f"  - {{name: gone-model, base_url: 'http://127.0.0.1:{dead_port()}/v1'}}\n"
    )
    shown = doctor("--config", str(config), "--timeout", "3", env={"OPENAI_API_KEY": SECRET})
    assert shown.returncode == 0, shown.stdout + shown.stderr  # the interpreter has all it needs here
    lines = {line.split("│")[1].strip(): line for line in shown.stdout.splitlines() if line.count("│") >= 4}
    assert "none: torch sees no GPU" in lines["GPU"]
    assert "auto picks triton-interpret" in lines["backend"]
    assert torch.__version__ in lines["torch"] and triton.__version__ in lines["triton"]
    assert "not a MetaX host" in lines["MetaX"]
    assert {"docker", "docker image", "network isolation", "privileges"} <= set(lines)  # whatever this host has
    assert f"{fake_openai.base_url} reachable" in lines["LLM fake-model"]
    assert "unreachable" in lines["LLM gone-model"] and "warning" in lines["LLM gone-model"]
    assert SECRET not in shown.stdout + shown.stderr and SECRET[-8:] not in shown.stdout


def test_a_gpu_backend_on_this_machine_exits_1_naming_what_is_missing(tmp_path):
    shown = doctor("--backend", "triton-nvidia", cwd=tmp_path)  # no kernelsmith.yaml there: defaults
    assert shown.returncode == 1
    assert "needs a GPU" in shown.stdout and "Missing for this backend: GPU, backend" in shown.stdout


@pytest.fixture
def metax_host(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "host"
    (root / "dev" / "dri").mkdir(parents=True)
    (root / "dev" / "mxcd").touch()
    (root / "opt" / "mxdriver" / "bin").mkdir(parents=True)
    (root / "opt" / "mxdriver" / "bin" / "mx-smi").symlink_to(FAKE_MX_SMI)
    return root, {"PATH": "/usr/bin:/bin"}  # no MACA_PATH, mx-smi only in the driver's folder


def test_on_a_metax_host_it_says_what_it_found_and_what_is_missing(metax_host):
    root, env = metax_host
    checks = {}
    for check in host_checks(Backend.auto, root, env):
        checks.setdefault(check.name, []).append(check)
    assert f"device node {root}/dev/mxcd" in checks["MetaX"][0].detail
    assert checks["mx-smi"][0].detail == ("0: MetaX C500, 65536 MiB (Available); 1: MetaX C500, 65536 MiB "
                                          "(Available); MACA 2.33.0.5, driver 2.14.8")
    gaps = " | ".join(check.detail for check in checks["MetaX needs"])
    assert "MACA_PATH" in gaps and "MetaX's Triton" in gaps and "/dev/mxcd" not in gaps
    assert checks["MACA_MPS_MODE"][0].status == "warning"
    # auto still runs here (the interpreter: torch sees no GPU), so nothing it needs is missing
    assert "auto picks triton-interpret" in checks["backend"][0].detail
    assert not any(check.fails for group in checks.values() for check in group)

    asked = host_checks(Backend.maca_metax, root, env)
    failing = [check for check in asked if check.fails]
    assert any("install MetaX's PyTorch build" in check.detail for check in failing)
    assert any("MACA_PATH" in check.detail for check in failing)


def test_docker_is_reported_unreachable_on_a_dead_socket_and_the_image_by_name(tmp_path):
    dead = docker_checks("kernelsmith-evaluator:latest", {"DOCKER_HOST": f"unix://{tmp_path}/none.sock"}, 2.0)
    assert [(c.name, c.status) for c in dead] == [("docker", "warning")] and "not reachable" in dead[0].detail
    try:
        httpx.Client(transport=httpx.HTTPTransport(uds="/var/run/docker.sock"), timeout=2).get("http://docker/_ping")
    except httpx.HTTPError:
        pytest.skip("no docker daemon on this machine")
    live = docker_checks("kernelsmith-doctor-never-built:none", {}, 5.0)
    assert live[0].status == "ok" and "daemon" in live[0].detail
    assert live[1].status == "warning" and "is not present" in live[1].detail


@pytest.fixture
def docker_engine() -> Iterator[str]:
    """A loopback server answering the two Docker Engine API calls doctor makes, holding one image:
    the docker sandbox's default. Yields its DOCKER_HOST."""

    class Engine(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            known = self.path in ("/version", f"/images/{DEFAULT_IMAGE.replace(':', '%3A')}/json")
            body = b'{"Version": "27.0.0-loopback"}' if known else b'{"message": "No such image"}'
            self.send_response(200 if known else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Engine)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"tcp://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_it_checks_for_the_image_the_docker_sandbox_uses_by_default(docker_engine, tmp_path):
    found = doctor(env={"DOCKER_HOST": docker_engine}, cwd=tmp_path)
    assert f"{DEFAULT_IMAGE} is present" in found.stdout, found.stdout
    named = doctor("--image", "kernelsmith-doctor-never-built:none", env={"DOCKER_HOST": docker_engine}, cwd=tmp_path)
    assert "kernelsmith-doctor-never-built:none is not present" in named.stdout
    assert "build-image --tag kernelsmith-doctor-never-built:none" in named.stdout
